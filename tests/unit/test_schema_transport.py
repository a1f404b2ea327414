"""Addresses and trust (issue 13): plain http only to loopback unless vaultfleet:allowInsecureHttp opts
in, what is wrong with a bad vaultAddress or apiHost URL, caCert as X.509."""

import pytest

from tests.harness import FLEET, SHARED_FILE, accepted, cluster, cluster_values, refused
from vaultfleet.stackfile.schema import ConfigError, parse

# Transport: plain http only to loopback, unless vaultfleet:allowInsecureHttp opts in.

LOOPBACK = ["http://127.0.0.1:18200", "http://127.5.6.7:8200", "http://localhost:8200", "http://[::1]:8200"]
REMOTE = ["http://vault.example.com:8200", "http://10.0.0.5:8200", "http://[2001:db8::1]:8200", "http://128.0.0.1"]


@pytest.mark.parametrize("address", LOOPBACK)
def test_loopback_http_is_accepted(address):
    assert accepted({**cluster_values(), "vaultAddress": address}).fleet.vault_address == address
    assert accepted(cluster(apiHost=address.replace("8200", "6443"))).cluster.api_host


@pytest.mark.parametrize("address", REMOTE)
def test_http_to_a_remote_host_is_refused_unless_allowed(address):
    refused({**cluster_values(), "vaultAddress": address}, "vaultfleet:vaultAddress", "allowInsecureHttp")
    refused(cluster(apiHost=address), "vaultfleet:cluster.apiHost", "allowInsecureHttp")

    for flag in (True, "true"):  # from a stack file, or from the engine (config values as strings)
        stack = accepted({**cluster(apiHost=address), "vaultAddress": address, "allowInsecureHttp": flag})
        assert (stack.fleet.vault_address, stack.cluster.api_host) == (address, address)
        assert stack.fleet.allow_insecure_http is True


def test_allow_insecure_http_false_allows_nothing_and_must_be_a_boolean():
    refused(
        {**cluster_values(), "vaultAddress": REMOTE[0], "allowInsecureHttp": False},
        "vaultfleet:vaultAddress",
        "allowInsecureHttp",
    )
    for bad in ("yes", 1, "True", ["true"]):
        refused({**cluster_values(), "allowInsecureHttp": bad}, "vaultfleet:allowInsecureHttp", "true or false")
    # An invalid opt-in allows nothing: the address is refused too.
    refused({**cluster_values(), "vaultAddress": REMOTE[0], "allowInsecureHttp": "yes"}, "vaultfleet:vaultAddress", "")


def test_shared_stack_checks_the_vault_address_alike():
    with pytest.raises(ConfigError) as info:
        parse({**FLEET, "kind": "shared", "vaultAddress": REMOTE[0]}, "vault", SHARED_FILE)
    assert info.value.problems[0][:2] == (SHARED_FILE, "vaultfleet:vaultAddress")
    stack = parse({**FLEET, "kind": "shared", "vaultAddress": REMOTE[0], "allowInsecureHttp": True}, "vault", "f")
    assert stack.fleet.vault_address == REMOTE[0]


def test_https_urls_with_paths_ports_and_ipv6_are_accepted():
    for address in (
        "https://vault.example.com",
        "https://vault.example.com:8200/",
        "https://rancher.example.com/k8s/clusters/c-m-abc12",
        "https://[2001:db8::1]:6443",
        "https://10.20.0.1:65535",
    ):
        assert accepted(cluster(apiHost=address)).cluster.api_host == address.rstrip("/")


@pytest.mark.parametrize(
    ("address", "fragment"),
    [
        ("https://10.0.0.1:0", "between 1 and 65535"),
        ("https://10.0.0.1:65536", "between 1 and 65535"),
        ("https://10.0.0.256", "not an IPv4 address"),
        ("https://[::zz]:6443", "not an IPv6 address"),
        ("https://-api.example.com", "not a host name"),
        ("https://a..b", "not a host name"),
        ("https://:6443", "not a host name"),
        ("https://ops:pw@api.example.com", "credentials"),
        ("https://api.example.com/#x", "query or fragment"),
        ("https://api.example.com /x", "spaces"),
    ],
)
def test_bad_urls_say_what_is_wrong(address, fragment):
    refused(cluster(apiHost=address), "vaultfleet:cluster.apiHost", fragment)


# caCert: a PEM that parses as X.509, only certificates, not all expired.


def test_ca_cert_parses_as_x509():
    from tests.bad_inputs import certificate_pem

    pem = certificate_pem()
    assert accepted(cluster(caCert=pem)).cluster.ca_cert == pem
    bundle = pem + certificate_pem(expired=True)  # a bundle with one valid certificate is usable
    assert accepted(cluster(caCert=bundle)).cluster.ca_cert == bundle
    refused(
        cluster(caCert="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
        "vaultfleet:cluster.caCert",
        "X.509",
    )
    refused(cluster(caCert=certificate_pem(expired=True)), "vaultfleet:cluster.caCert", "expired on")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
        .decode()
    )
    refused(cluster(caCert=pem + key), "vaultfleet:cluster.caCert", "EC PRIVATE KEY block")
