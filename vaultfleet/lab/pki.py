"""Key material for the lab: one CA, serving certificate and ServiceAccount signing key per cluster.

Each cluster gets its own CA and its own signing key, so a ServiceAccount token of one lab cluster
is invalid at every other cluster (the point of per-cluster auth mounts).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vaultfleet.lab.files import write_private

_VALIDITY = dt.timedelta(days=30)  # a lab lives hours; a month leaves room for a paused laptop


@dataclass(frozen=True)
class ClusterPki:
    """Paths of one cluster's key material (PEM files, keys mode 0600)."""

    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path  # private: kube-apiserver signs tokens, kube-controller-manager signs legacy ones
    sa_pub: Path  # public: kube-apiserver verifies tokens

    @classmethod
    def in_directory(cls, directory: Path) -> ClusterPki:
        """The file names of a cluster's PKI directory: where create_cluster_pki writes them and the
        lab record finds them."""
        return cls(
            ca_cert=directory / "ca.crt",
            ca_key=directory / "ca.key",
            serving_cert=directory / "apiserver.crt",
            serving_key=directory / "apiserver.key",
            admin_cert=directory / "admin.crt",
            admin_key=directory / "admin.key",
            sa_key=directory / "sa.key",
            sa_pub=directory / "sa.pub",
        )


def _write_key(path: Path, key) -> None:
    # 0600 from the start (files.write_private), never readable by others for a moment.
    write_private(
        path,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


def _write_public(path: Path, pem: bytes) -> None:
    write_private(path, pem, mode=0o644)


def _cert(subject: x509.Name, public_key, issuer: x509.Name, signer, extensions) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(signer, hashes.SHA256())


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _leaf(ca_name, ca_key, common_name, organization, usage, sans=None):
    key = ec.generate_private_key(ec.SECP256R1())
    extensions = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.ExtendedKeyUsage([usage]), False),
    ]
    if sans:
        extensions.append((x509.SubjectAlternativeName(sans), False))
    return key, _cert(_name(common_name, organization), key.public_key(), ca_name, ca_key, extensions)


def create_cluster_pki(directory: Path, cluster: str) -> ClusterPki:
    """Generate a fresh CA, serving cert (127.0.0.1, localhost), admin client cert and SA key pair."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    pki = ClusterPki.in_directory(directory)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"vaultfleet-lab-{cluster}-ca")
    ca = _cert(
        ca_name,
        ca_key.public_key(),
        ca_name,
        ca_key,
        [
            (x509.BasicConstraints(ca=True, path_length=0), True),
            (
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                True,
            ),
        ],
    )
    _write_key(pki.ca_key, ca_key)
    _write_public(pki.ca_cert, ca.public_bytes(serialization.Encoding.PEM))

    sans = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes.default.svc"),
    ]
    key, cert = _leaf(ca_name, ca_key, f"{cluster}-apiserver", None, ExtendedKeyUsageOID.SERVER_AUTH, sans)
    _write_key(pki.serving_key, key)
    _write_public(pki.serving_cert, cert.public_bytes(serialization.Encoding.PEM))

    # system:masters: the lab admin (and the controller manager) bypass RBAC, as kubeadm's admin does.
    key, cert = _leaf(ca_name, ca_key, "vaultfleet-lab-admin", "system:masters", ExtendedKeyUsageOID.CLIENT_AUTH)
    _write_key(pki.admin_key, key)
    _write_public(pki.admin_cert, cert.public_bytes(serialization.Encoding.PEM))

    write_signing_key(pki)
    return pki


def write_signing_key(pki: ClusterPki) -> None:
    """A fresh ServiceAccount token signing key pair (RSA: what every token consumer, Vault
    included, accepts) in place of the current one."""
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki.sa_key, sa_key)
    _write_public(
        pki.sa_pub,
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    )


def previous_signing_key(pki: ClusterPki) -> Path:
    """Where a rotation keeps the previous public key (tokens it signed stay valid)."""
    return pki.sa_pub.with_name("sa-previous.pub")


def client_certificate(pki: ClusterPki, common_name: str, group: str) -> tuple[bytes, bytes]:
    """(key PEM, certificate PEM) of a client the cluster authenticates as user `common_name` in
    `group` (O=), signed by the cluster's CA: an identity with no rights until RBAC grants some."""
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), None)
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    key, cert = _leaf(ca.subject, ca_key, common_name, group, ExtendedKeyUsageOID.CLIENT_AUTH)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def serving_certificate(pki: ClusterPki, common_name: str) -> tuple[bytes, bytes]:
    """(key PEM, certificate PEM) of a server on 127.0.0.1 the cluster trusts (signed by its CA):
    what its apiserver needs of a webhook it calls, the lab's Vault agent injector."""
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), None)
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    sans = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    key, cert = _leaf(ca.subject, ca_key, common_name, None, ExtendedKeyUsageOID.SERVER_AUTH, sans)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)
