"""A corpus of malformed inputs: each must be refused before anything reaches Vault or a cluster.

One module over 300 lines: it is data, not code to split by concern: a few lines a case, and
tests/unit/test_bad_input.py and tests/lab/test_bad_input_preview.py each walk the whole corpus.

Each case of CASES edits the lab-a stack file's config (STACK) or replaces policies/kv-read.hcl
(POLICY) in a scratch copy of the project, and names what the error must mention (file and field).
SHARED_CASES edit the shared stack's file (SHARED_STACK) instead: its database engine, whose
connection password they write as `secure:` ciphertext, which `vaultfleet validate` takes as is (a
run through the engine sets the password with `pulumi config set --secret` instead).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import edit_stack

STACK = "lab-a"
STACK_FILE = f"stacks/Pulumi.{STACK}.yaml"
SHARED_STACK = "vault"
POLICY_FILE = "policies/kv-read.hcl"


@dataclass(frozen=True)
class BadInput:
    name: str
    field: str  # what the message must name besides the file
    edit: Callable[[dict], None] | None = None  # mutates the stack file's `config:` mapping
    policy: str | None = None  # replaces policies/kv-read.hcl
    stack: str = STACK  # the stack whose file `edit` changes (and which is validated)

    @property
    def file(self) -> str:
        return POLICY_FILE if self.policy is not None else f"stacks/Pulumi.{self.stack}.yaml"

    def apply(self, project: Path) -> None:
        """Make this bad input in `project`, a scratch copy of the project."""
        if self.policy is not None:
            (project / POLICY_FILE).write_text(self.policy)
        else:
            edit_stack(project, self.stack, self.edit)


@functools.cache
def certificate_pem(expired: bool = False) -> str:
    """A self-signed CA certificate as PEM, valid for ten years (or, `expired`, until a year ago)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vaultfleet-test-ca")])
    now = dt.datetime.now(dt.UTC)
    if expired:
        start, end = now - dt.timedelta(days=730), now - dt.timedelta(days=365)
    else:
        start, end = now - dt.timedelta(minutes=5), now + dt.timedelta(days=3650)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _role(**changes):
    def edit(config):
        config["vaultfleet:roles"][0].update(changes)

    return edit


def _role_drop(key):
    def edit(config):
        config["vaultfleet:roles"][0].pop(key)

    return edit


def _cluster(**changes):
    def edit(config):
        config["vaultfleet:cluster"].update(changes)

    return edit


def _set(key, value):
    def edit(config):
        config[key] = value

    return edit


def _rename(old, new):
    def edit(config):
        config[new] = config.pop(old)

    return edit


def _duplicate_role(config):
    config["vaultfleet:roles"].append(dict(config["vaultfleet:roles"][0]))


def _database(connection=None, role=None):
    """A valid database engine in the shared stack's file, but for these changes."""

    def edit(config):
        config["vaultfleet:database"] = {
            "connections": [
                {
                    "name": "app-db",
                    "connectionUrl": "postgresql://{{username}}:{{password}}@db.internal:5432/app?sslmode=verify-full",
                    "username": "vault",
                    "password": {"secure": "v1:corpus:placeholder"},
                    **(connection or {}),
                }
            ],
            "roles": [
                {
                    "name": "app-readonly",
                    "connection": "app-db",
                    "creationStatements": [
                        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"
                    ],
                    **(role or {}),
                }
            ],
        }

    return edit


PEM_HEAD_ONLY = "-----BEGIN CERTIFICATE-----\nMIIB\n"
PEM_NOT_A_CERTIFICATE = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def private_key_pem() -> str:
    """A fresh EC private key as PKCS#8 PEM: what a caCert must never hold (made per run, never stored)."""
    from cryptography.hazmat.primitives import serialization

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


CASES = [
    # unknown keys and typos
    BadInput("key typo roles", "vaultfleet:role", _rename("vaultfleet:roles", "vaultfleet:role")),
    BadInput("key typo cluster", "vaultfleet:clusters", _rename("vaultfleet:cluster", "vaultfleet:clusters")),
    BadInput("role audiences", "vaultfleet:roles[0].audiences", _role(audiences="vault")),
    BadInput("role policy", "vaultfleet:roles[0].policy", _role(policy=["kv-read"])),
    BadInput("role serviceAccount", "vaultfleet:roles[0].serviceAccount", _role(serviceAccount=["app"])),
    BadInput("role namespace", "vaultfleet:roles[0].namespace", _role(namespace=["app"])),
    BadInput("role maxTTL", "vaultfleet:roles[0].maxTTL", _role(maxTTL="4h")),
    BadInput("role token_ttl", "vaultfleet:roles[0].token_ttl", _role(token_ttl="1h")),
    BadInput("cluster kubecontext", "vaultfleet:cluster.kubecontext", _cluster(kubecontext="lab-a")),
    BadInput("cluster caCertificate", "vaultfleet:cluster.caCertificate", _cluster(caCertificate="x")),
    # wrong types
    BadInput("roles not a list", "vaultfleet:roles", _set("vaultfleet:roles", "app")),
    BadInput("cluster not a mapping", "vaultfleet:cluster", _set("vaultfleet:cluster", "lab-a")),
    BadInput("serviceAccounts a string", "vaultfleet:roles[0].serviceAccounts", _role(serviceAccounts="app")),
    BadInput("namespaces a number", "vaultfleet:roles[0].namespaces", _role(namespaces=7)),
    BadInput("policies a mapping", "vaultfleet:roles[0].policies", _role(policies={"kv-read": True})),
    BadInput("ttl a boolean", "vaultfleet:roles[0].ttl", _role(ttl=True)),
    BadInput("template list a string", "vaultfleet:policies", _set("vaultfleet:policies", "kv-read")),
    # empty or invalid names
    BadInput("role name missing", "vaultfleet:roles[0].name", _role_drop("name")),
    BadInput("role name empty", "vaultfleet:roles[0].name", _role(name="")),
    BadInput("role name uppercase", "vaultfleet:roles[0].name", _role(name="App")),
    BadInput("role name underscore", "vaultfleet:roles[0].name", _role(name="my_app")),
    BadInput("serviceAccounts empty", "vaultfleet:roles[0].serviceAccounts", _role(serviceAccounts=[])),
    BadInput("namespaces empty", "vaultfleet:roles[0].namespaces", _role(namespaces=[])),
    BadInput("namespace invalid", "vaultfleet:roles[0].namespaces", _role(namespaces=["Bad_NS"])),
    BadInput("policies empty", "vaultfleet:roles[0].policies", _role(policies=[])),
    BadInput(
        "kubeContext missing", "vaultfleet:cluster.kubeContext", lambda c: c["vaultfleet:cluster"].pop("kubeContext")
    ),
    BadInput("kubeContext empty", "vaultfleet:cluster.kubeContext", _cluster(kubeContext="")),
    BadInput("mountPrefix uppercase", "vaultfleet:mountPrefix", _set("vaultfleet:mountPrefix", "K8S")),
    BadInput("kvMount empty", "vaultfleet:kvMount", _set("vaultfleet:kvMount", "")),
    BadInput("kind unknown", "vaultfleet:kind", _set("vaultfleet:kind", "sharded")),
    # negative, zero, oversized, malformed durations
    BadInput("ttl negative", "vaultfleet:roles[0].ttl", _role(ttl="-5m")),
    BadInput("ttl zero", "vaultfleet:roles[0].ttl", _role(ttl="0s")),
    BadInput("ttl oversized", "vaultfleet:roles[0].ttl", _role(ttl="400d")),
    BadInput("ttl words", "vaultfleet:roles[0].ttl", _role(ttl="1 hour")),
    BadInput("maxTtl below ttl", "vaultfleet:roles[0]", _role(ttl="2h", maxTtl="1h")),
    # bad URLs and certificates
    BadInput("apiHost ftp", "vaultfleet:cluster.apiHost", _cluster(apiHost="ftp://10.0.0.1")),
    BadInput("apiHost not a URL", "vaultfleet:cluster.apiHost", _cluster(apiHost="10.0.0.1:6443")),
    BadInput("vaultAddress no scheme", "vaultfleet:vaultAddress", _set("vaultfleet:vaultAddress", "vault:8200")),
    BadInput("caCert not PEM", "vaultfleet:cluster.caCert", _cluster(caCert="hello")),
    BadInput("caCert truncated", "vaultfleet:cluster.caCert", _cluster(caCert=PEM_HEAD_ONLY)),
    # duplicates and references
    BadInput("duplicate role", "vaultfleet:roles", _duplicate_role),
    BadInput("role names a policy not rendered", "roles[0].policies", _role(policies=["kv-admin"])),
    # database roles a cluster may read credentials of
    BadInput("databaseRoles a string", "vaultfleet:databaseRoles", _set("vaultfleet:databaseRoles", "app-readonly")),
    BadInput(
        "databaseRoles uppercase", "vaultfleet:databaseRoles[0]", _set("vaultfleet:databaseRoles", ["AppReadonly"])
    ),
    BadInput("databaseRoles duplicate", "vaultfleet:databaseRoles", _set("vaultfleet:databaseRoles", ["app", "app"])),
    BadInput("key typo databaseRole", "vaultfleet:databaseRole", _set("vaultfleet:databaseRole", ["app"])),
    BadInput(
        "database engine in a cluster stack", "vaultfleet:database", _set("vaultfleet:database", {"connections": []})
    ),
    BadInput("databaseMount uppercase", "vaultfleet:databaseMount", _set("vaultfleet:databaseMount", "DB")),
    # what Kubernetes accepts as names: namespaces are DNS-1123 labels (63), ServiceAccounts
    # DNS-1123 subdomains (253); '*' only alone
    BadInput(
        "reviewerNamespace invalid", "vaultfleet:cluster.reviewerNamespace", _cluster(reviewerNamespace="Kube_System")
    ),
    BadInput(
        "reviewerNamespace 64 characters", "vaultfleet:cluster.reviewerNamespace", _cluster(reviewerNamespace="n" * 64)
    ),
    BadInput(
        "reviewerNamespace with a dot",
        "vaultfleet:cluster.reviewerNamespace",
        _cluster(reviewerNamespace="kube.system"),
    ),
    BadInput(
        "reviewerServiceAccount double dot",
        "vaultfleet:cluster.reviewerServiceAccount",
        _cluster(reviewerServiceAccount="vault..auth"),
    ),
    BadInput(
        "reviewerServiceAccount too long for its token Secret",
        "vaultfleet:cluster.reviewerServiceAccount",
        _cluster(reviewerServiceAccount="a" * 248),
    ),
    BadInput("namespace 64 characters", "vaultfleet:roles[0].namespaces", _role(namespaces=["n" * 64])),
    BadInput("namespace with a dot", "vaultfleet:roles[0].namespaces", _role(namespaces=["team.a"])),
    BadInput("namespace glob", "vaultfleet:roles[0].namespaces", _role(namespaces=["app-*"])),
    BadInput("namespace star mixed with names", "vaultfleet:roles[0].namespaces", _role(namespaces=["*", "app"])),
    BadInput("serviceAccount double dot", "vaultfleet:roles[0].serviceAccounts", _role(serviceAccounts=["a..b"])),
    BadInput(
        "serviceAccount 254 characters", "vaultfleet:roles[0].serviceAccounts", _role(serviceAccounts=["a" * 254])
    ),
    BadInput("serviceAccount star inside", "vaultfleet:roles[0].serviceAccounts", _role(serviceAccounts=["a*b"])),
    BadInput(
        "serviceAccount star mixed with names",
        "vaultfleet:roles[0].serviceAccounts",
        _role(serviceAccounts=["app", "*"]),
    ),
    # strings Vault compares or Kubernetes looks up as they are
    BadInput("kubeContext control character", "vaultfleet:cluster.kubeContext", _cluster(kubeContext="lab\ta")),
    BadInput("kubeContext trailing space", "vaultfleet:cluster.kubeContext", _cluster(kubeContext="lab-a ")),
    BadInput(
        "issuer a bare host name", "vaultfleet:cluster.issuer", _cluster(issuer="kubernetes.default.svc.cluster.local")
    ),
    BadInput("issuer URL without host", "vaultfleet:cluster.issuer", _cluster(issuer="https://")),
    BadInput(
        "issuer with a space", "vaultfleet:cluster.issuer", _cluster(issuer="https://kubernetes.default.svc cluster")
    ),
    BadInput("issuer empty", "vaultfleet:cluster.issuer", _cluster(issuer="")),
    BadInput("audience empty", "vaultfleet:roles[0].audience", _role(audience="")),
    BadInput("audience blank", "vaultfleet:roles[0].audience", _role(audience="  ")),
    BadInput("audience with a space", "vaultfleet:roles[0].audience", _role(audience="my vault")),
    # transport: plain http only to loopback, unless vaultfleet:allowInsecureHttp
    BadInput(
        "vaultAddress http to a remote host",
        "vaultfleet:vaultAddress",
        _set("vaultfleet:vaultAddress", "http://vault.example.com:8200"),
    ),
    BadInput("apiHost http to a remote host", "vaultfleet:cluster.apiHost", _cluster(apiHost="http://10.0.0.1:6443")),
    BadInput(
        "allowInsecureHttp not a boolean", "vaultfleet:allowInsecureHttp", _set("vaultfleet:allowInsecureHttp", "yes")
    ),
    BadInput(
        "vaultAddress with credentials",
        "vaultfleet:vaultAddress",
        _set("vaultfleet:vaultAddress", "https://ops:pw@vault.example.com"),
    ),
    BadInput(
        "vaultAddress with a query",
        "vaultfleet:vaultAddress",
        _set("vaultfleet:vaultAddress", "https://vault.example.com/?x=1"),
    ),
    BadInput("apiHost port out of range", "vaultfleet:cluster.apiHost", _cluster(apiHost="https://10.0.0.1:70000")),
    BadInput("apiHost port zero", "vaultfleet:cluster.apiHost", _cluster(apiHost="https://10.0.0.1:0")),
    BadInput("apiHost bad IPv4 address", "vaultfleet:cluster.apiHost", _cluster(apiHost="https://10.0.0.256:6443")),
    BadInput(
        "apiHost host name starting with a dash",
        "vaultfleet:cluster.apiHost",
        _cluster(apiHost="https://-api.example.com"),
    ),
    # certificates that are PEM in shape only
    BadInput("caCert not a certificate", "vaultfleet:cluster.caCert", _cluster(caCert=PEM_NOT_A_CERTIFICATE)),
    BadInput(
        "caCert with a private key", "vaultfleet:cluster.caCert", _cluster(caCert=private_key_pem() + certificate_pem())
    ),
    BadInput("caCert expired", "vaultfleet:cluster.caCert", _cluster(caCert=certificate_pem(expired=True))),
    # Vault paths and names derived from the fleet keys
    BadInput("kvMount reserved by Vault", "vaultfleet:kvMount", _set("vaultfleet:kvMount", "sys")),
    BadInput("databaseMount is the kvMount", "vaultfleet:databaseMount", _set("vaultfleet:databaseMount", "kv")),
    BadInput(
        "policies duplicate", "vaultfleet:policies", _set("vaultfleet:policies", ["kv-read", "kv-write", "kv-read"])
    ),
    BadInput(
        "databaseRoles 39 characters", "vaultfleet:databaseRoles[0]", _set("vaultfleet:databaseRoles", ["r" * 39])
    ),
    # policy templates
    BadInput("HCL syntax error", POLICY_FILE, policy='path "kv/data/*" {\n  capabilities = ["read"]\n'),
    BadInput("unknown capability", POLICY_FILE, policy='path "kv/data/*" { capabilities = ["reed"] }'),
    BadInput("empty path", POLICY_FILE, policy='path "" { capabilities = ["read"] }'),
    BadInput("capabilities not a list", POLICY_FILE, policy='path "kv/data/*" { capabilities = "read" }'),
    BadInput("no path block", POLICY_FILE, policy="# grants nothing\n"),
    BadInput("unknown placeholder", POLICY_FILE, policy='path "${kv}/data/*" { capabilities = ["read"] }'),
    BadInput("glob inside a path", POLICY_FILE, policy='path "kv/*/data" { capabilities = ["read"] }'),
    BadInput("unknown block", POLICY_FILE, policy='paths "kv/data/*" { capabilities = ["read"] }'),
]

SHARED_CASES = [
    BadInput(
        "connectionUrl port out of range",
        "vaultfleet:database.connections[0].connectionUrl",
        _database({"connectionUrl": "postgresql://{{username}}:{{password}}@db.internal:99999/app"}),
        stack=SHARED_STACK,
    ),
    BadInput(
        "connectionUrl without host",
        "vaultfleet:database.connections[0].connectionUrl",
        _database({"connectionUrl": "postgresql://{{username}}:{{password}}@/app"}),
        stack=SHARED_STACK,
    ),
    BadInput(
        "connectionUrl host with a space",
        "vaultfleet:database.connections[0].connectionUrl",
        _database({"connectionUrl": "postgresql://{{username}}:{{password}}@db internal:5432/app"}),
        stack=SHARED_STACK,
    ),
    BadInput(
        "connectionUrl port not a number",
        "vaultfleet:database.connections[0].connectionUrl",
        _database({"connectionUrl": "postgresql://{{username}}:{{password}}@db.internal:pg/app"}),
        stack=SHARED_STACK,
    ),
    BadInput(
        "connectionUrl unknown sslmode",
        "vaultfleet:database.connections[0].connectionUrl",
        _database({"connectionUrl": "postgresql://{{username}}:{{password}}@db.internal:5432/app?sslmode=verify"}),
        stack=SHARED_STACK,
    ),
    BadInput(
        "username with a space",
        "vaultfleet:database.connections[0].username",
        _database({"username": "vault admin"}),
        stack=SHARED_STACK,
    ),
    BadInput(
        "username 64 bytes",
        "vaultfleet:database.connections[0].username",
        _database({"username": "u" * 64}),
        stack=SHARED_STACK,
    ),
    BadInput(
        "database role name 39 characters",
        "vaultfleet:database.roles[0].name",
        _database(role={"name": "r" * 39}),
        stack=SHARED_STACK,
    ),
    BadInput(
        "kvMount reserved by Vault in the shared stack",
        "vaultfleet:kvMount",
        _set("vaultfleet:kvMount", "identity"),
        stack=SHARED_STACK,
    ),
]
