"""A corpus of malformed inputs: each must be refused before anything reaches Vault or a cluster.

One module over 300 lines: it is data, not code to split by concern: a few lines a case, and
tests/unit/test_bad_input.py and tests/lab/test_bad_input_preview.py each walk the whole corpus.

Each case of CASES edits the lab-a stack file's config (STACK) or replaces policies/kv-read.hcl
(POLICY) in a scratch copy of the project, and names what the error must mention: file, field and a
fragment of the message that says why (from the real error text, as `vaultfleet validate` prints it).
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

from tests.harness import edit_stack

STACK = "lab-a"
STACK_FILE = f"stacks/Pulumi.{STACK}.yaml"
SHARED_STACK = "vault"
POLICY_FILE = "policies/kv-read.hcl"


@dataclass(frozen=True)
class BadInput:
    name: str
    field: str  # what the message must name besides the file (a policy template's cases: the file)
    message: str  # a fragment of the message that says why, so that no other refusal passes for this one
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


def _both(*edits):
    def edit(config):
        for change in edits:
            change(config)

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


# Message fragments more than one case expects.
UNKNOWN_FIELD = "unknown field"
NOT_A_LIST = "Input should be a valid list"
NOT_A_LABEL = "must be a lowercase DNS label"
NO_ITEM = "List should have at least 1 item"
NOT_A_NAMESPACE = "is not a Kubernetes namespace name"
NOT_A_SERVICE_ACCOUNT = "is not a Kubernetes ServiceAccount name"
BAD_TTL_RANGE = "must be between 1s and 90d"
NOT_PEM = "must be a PEM certificate"
BAD_AUDIENCE = "must be a non-empty audience"
SPACES = "must not hold spaces or control characters"
TOO_LONG_FOR_INJECTOR = "must be at most 38 characters"
BINDS_REVIEWER = "binds the reviewer's ServiceAccount"


CASES = [
    # unknown keys and typos
    BadInput(
        "key typo roles",
        "vaultfleet:role",
        "unknown key (did you mean 'vaultfleet:roles'?)",
        _rename("vaultfleet:roles", "vaultfleet:role"),
    ),
    BadInput(
        "key typo cluster",
        "vaultfleet:clusters",
        "unknown key (did you mean 'vaultfleet:cluster'?)",
        _rename("vaultfleet:cluster", "vaultfleet:clusters"),
    ),
    BadInput("role audiences", "vaultfleet:roles[0].audiences", UNKNOWN_FIELD, _role(audiences="vault")),
    BadInput("role policy", "vaultfleet:roles[0].policy", UNKNOWN_FIELD, _role(policy=["kv-read"])),
    BadInput("role serviceAccount", "vaultfleet:roles[0].serviceAccount", UNKNOWN_FIELD, _role(serviceAccount=["app"])),
    BadInput("role namespace", "vaultfleet:roles[0].namespace", UNKNOWN_FIELD, _role(namespace=["app"])),
    BadInput("role maxTTL", "vaultfleet:roles[0].maxTTL", UNKNOWN_FIELD, _role(maxTTL="4h")),
    BadInput("role token_ttl", "vaultfleet:roles[0].token_ttl", UNKNOWN_FIELD, _role(token_ttl="1h")),
    BadInput("cluster kubecontext", "vaultfleet:cluster.kubecontext", UNKNOWN_FIELD, _cluster(kubecontext="lab-a")),
    BadInput("cluster caCertificate", "vaultfleet:cluster.caCertificate", UNKNOWN_FIELD, _cluster(caCertificate="x")),
    # wrong types
    BadInput("roles not a list", "vaultfleet:roles", NOT_A_LIST, _set("vaultfleet:roles", "app")),
    BadInput(
        "cluster not a mapping",
        "vaultfleet:cluster",
        "Input should be a valid dictionary",
        _set("vaultfleet:cluster", "lab-a"),
    ),
    BadInput(
        "serviceAccounts a string", "vaultfleet:roles[0].serviceAccounts", NOT_A_LIST, _role(serviceAccounts="app")
    ),
    BadInput("namespaces a number", "vaultfleet:roles[0].namespaces", NOT_A_LIST, _role(namespaces=7)),
    BadInput("policies a mapping", "vaultfleet:roles[0].policies", NOT_A_LIST, _role(policies={"kv-read": True})),
    BadInput(
        "ttl a boolean",
        "vaultfleet:roles[0].ttl",
        "must be a duration such as '1h' or a number of seconds",
        _role(ttl=True),
    ),
    BadInput("template list a string", "vaultfleet:policies", NOT_A_LIST, _set("vaultfleet:policies", "kv-read")),
    # empty or invalid names
    BadInput("role name missing", "vaultfleet:roles[0].name", "required field is missing", _role_drop("name")),
    BadInput("role name empty", "vaultfleet:roles[0].name", NOT_A_LABEL, _role(name="")),
    BadInput("role name uppercase", "vaultfleet:roles[0].name", NOT_A_LABEL, _role(name="App")),
    BadInput("role name underscore", "vaultfleet:roles[0].name", NOT_A_LABEL, _role(name="my_app")),
    BadInput("serviceAccounts empty", "vaultfleet:roles[0].serviceAccounts", NO_ITEM, _role(serviceAccounts=[])),
    BadInput("namespaces empty", "vaultfleet:roles[0].namespaces", NO_ITEM, _role(namespaces=[])),
    BadInput(
        "namespace invalid",
        "vaultfleet:roles[0].namespaces",
        f"'Bad_NS' {NOT_A_NAMESPACE}",
        _role(namespaces=["Bad_NS"]),
    ),
    BadInput(
        "policies empty",
        "vaultfleet:roles[0]",
        "policies: a role attaches at least one policy (policies or existingPolicies)",
        _role(policies=[]),
    ),
    BadInput(
        "kubeContext missing",
        "vaultfleet:cluster.kubeContext",
        "required field is missing",
        lambda c: c["vaultfleet:cluster"].pop("kubeContext"),
    ),
    BadInput(
        "kubeContext empty",
        "vaultfleet:cluster.kubeContext",
        "String should have at least 1 character",
        _cluster(kubeContext=""),
    ),
    BadInput("mountPrefix uppercase", "vaultfleet:mountPrefix", NOT_A_LABEL, _set("vaultfleet:mountPrefix", "K8S")),
    BadInput("kvMount empty", "vaultfleet:kvMount", NOT_A_LABEL, _set("vaultfleet:kvMount", "")),
    BadInput("kind unknown", "vaultfleet:kind", "Input should be 'cluster'", _set("vaultfleet:kind", "sharded")),
    # negative, zero, oversized, malformed durations
    BadInput("ttl negative", "vaultfleet:roles[0].ttl", "'-5m' is not a duration", _role(ttl="-5m")),
    BadInput("ttl zero", "vaultfleet:roles[0].ttl", BAD_TTL_RANGE, _role(ttl="0s")),
    BadInput("ttl oversized", "vaultfleet:roles[0].ttl", BAD_TTL_RANGE, _role(ttl="400d")),
    BadInput("ttl words", "vaultfleet:roles[0].ttl", "'1 hour' is not a duration", _role(ttl="1 hour")),
    BadInput(
        "maxTtl below ttl", "vaultfleet:roles[0]", "ttl (7200s) is above maxTtl (3600s)", _role(ttl="2h", maxTtl="1h")
    ),
    # bad URLs and certificates
    BadInput(
        "apiHost ftp",
        "vaultfleet:cluster.apiHost",
        "'ftp://10.0.0.1' is not an http(s) URL",
        _cluster(apiHost="ftp://10.0.0.1"),
    ),
    BadInput(
        "apiHost not a URL",
        "vaultfleet:cluster.apiHost",
        "'10.0.0.1:6443' is not an http(s) URL",
        _cluster(apiHost="10.0.0.1:6443"),
    ),
    BadInput(
        "vaultAddress no scheme",
        "vaultfleet:vaultAddress",
        "'vault:8200' is not an http(s) URL",
        _set("vaultfleet:vaultAddress", "vault:8200"),
    ),
    BadInput("caCert not PEM", "vaultfleet:cluster.caCert", NOT_PEM, _cluster(caCert="hello")),
    BadInput("caCert truncated", "vaultfleet:cluster.caCert", NOT_PEM, _cluster(caCert=PEM_HEAD_ONLY)),
    # duplicates and references
    BadInput("duplicate role", "vaultfleet:roles", "role 'app' is declared twice", _duplicate_role),
    BadInput(
        "role names a policy not rendered",
        "roles[0].policies",
        "'kv-admin' is not among this cluster's policies",
        _role(policies=["kv-admin"]),
    ),
    # database roles a cluster may read credentials of
    BadInput(
        "databaseRoles a string",
        "vaultfleet:databaseRoles",
        NOT_A_LIST,
        _set("vaultfleet:databaseRoles", "app-readonly"),
    ),
    BadInput(
        "databaseRoles uppercase",
        "vaultfleet:databaseRoles[0]",
        NOT_A_LABEL,
        _set("vaultfleet:databaseRoles", ["AppReadonly"]),
    ),
    BadInput(
        "databaseRoles duplicate",
        "vaultfleet:databaseRoles",
        "database role 'app' is declared twice",
        _set("vaultfleet:databaseRoles", ["app", "app"]),
    ),
    BadInput(
        "key typo databaseRole",
        "vaultfleet:databaseRole",
        "unknown key (did you mean 'vaultfleet:databaseRoles'?)",
        _set("vaultfleet:databaseRole", ["app"]),
    ),
    BadInput(
        "database engine in a cluster stack",
        "vaultfleet:database",
        "only the shared stack (vaultfleet:kind: shared) may declare it",
        _set("vaultfleet:database", {"connections": []}),
    ),
    BadInput(
        "databaseMount uppercase", "vaultfleet:databaseMount", NOT_A_LABEL, _set("vaultfleet:databaseMount", "DB")
    ),
    # what Kubernetes accepts as names: namespaces are DNS-1123 labels (63), ServiceAccounts
    # DNS-1123 subdomains (253); '*' only alone
    BadInput(
        "reviewerNamespace invalid",
        "vaultfleet:cluster.reviewerNamespace",
        f"'Kube_System' {NOT_A_NAMESPACE}",
        _cluster(reviewerNamespace="Kube_System"),
    ),
    BadInput(
        "reviewerNamespace 64 characters",
        "vaultfleet:cluster.reviewerNamespace",
        f"{NOT_A_NAMESPACE}: a DNS-1123 label",
        _cluster(reviewerNamespace="n" * 64),
    ),
    BadInput(
        "reviewerNamespace with a dot",
        "vaultfleet:cluster.reviewerNamespace",
        f"'kube.system' {NOT_A_NAMESPACE}",
        _cluster(reviewerNamespace="kube.system"),
    ),
    BadInput(
        "reviewerServiceAccount double dot",
        "vaultfleet:cluster.reviewerServiceAccount",
        f"'vault..auth' {NOT_A_SERVICE_ACCOUNT}",
        _cluster(reviewerServiceAccount="vault..auth"),
    ),
    BadInput(
        "reviewerServiceAccount too long for its token Secret",
        "vaultfleet:cluster.reviewerServiceAccount",
        f"(248 characters) {NOT_A_SERVICE_ACCOUNT}",
        _cluster(reviewerServiceAccount="a" * 248),
    ),
    BadInput(
        "namespace 64 characters",
        "vaultfleet:roles[0].namespaces",
        f"{NOT_A_NAMESPACE}: a DNS-1123 label",
        _role(namespaces=["n" * 64]),
    ),
    BadInput(
        "namespace with a dot",
        "vaultfleet:roles[0].namespaces",
        f"'team.a' {NOT_A_NAMESPACE}",
        _role(namespaces=["team.a"]),
    ),
    BadInput(
        "namespace glob",
        "vaultfleet:roles[0].namespaces",
        "'*' is accepted only alone, for any namespace",
        _role(namespaces=["app-*"]),
    ),
    BadInput(
        "namespace star mixed with names",
        "vaultfleet:roles[0].namespaces",
        "'*' (any namespace) stands alone",
        _role(namespaces=["*", "app"]),
    ),
    BadInput(
        "serviceAccount double dot",
        "vaultfleet:roles[0].serviceAccounts",
        f"'a..b' {NOT_A_SERVICE_ACCOUNT}",
        _role(serviceAccounts=["a..b"]),
    ),
    BadInput(
        "serviceAccount 254 characters",
        "vaultfleet:roles[0].serviceAccounts",
        f"(254 characters) {NOT_A_SERVICE_ACCOUNT}",
        _role(serviceAccounts=["a" * 254]),
    ),
    BadInput(
        "serviceAccount star inside",
        "vaultfleet:roles[0].serviceAccounts",
        "'*' is accepted only alone, for any ServiceAccount",
        _role(serviceAccounts=["a*b"]),
    ),
    BadInput(
        "serviceAccount star mixed with names",
        "vaultfleet:roles[0].serviceAccounts",
        "'*' (any ServiceAccount) stands alone",
        _role(serviceAccounts=["app", "*"]),
    ),
    # a role the reviewer's own token could log in with (reviewer-token mode, the default: the
    # reviewer is kube-system/vault-auth), with or without an audience; a check across fields, named
    # at the head of the message ("vaultfleet: roles[0] ('app'): binds ...")
    BadInput(
        "role binds every ServiceAccount in every namespace",
        "roles[0]",
        BINDS_REVIEWER,
        _role(serviceAccounts=["*"], namespaces=["*"]),
    ),
    BadInput(
        "role binds every ServiceAccount in every namespace, no audience",
        "roles[0]",
        BINDS_REVIEWER,
        _both(_role(serviceAccounts=["*"], namespaces=["*"]), _role_drop("audience")),
    ),
    BadInput(
        "role binds the reviewer's ServiceAccount",
        "roles[0]",
        BINDS_REVIEWER,
        _role(serviceAccounts=["vault-auth"], namespaces=["kube-system"]),
    ),
    # strings Vault compares or Kubernetes looks up as they are
    BadInput(
        "kubeContext control character",
        "vaultfleet:cluster.kubeContext",
        "must not hold control characters",
        _cluster(kubeContext="lab\ta"),
    ),
    BadInput(
        "kubeContext trailing space",
        "vaultfleet:cluster.kubeContext",
        "must not start or end with spaces",
        _cluster(kubeContext="lab-a "),
    ),
    BadInput(
        "issuer a bare host name",
        "vaultfleet:cluster.issuer",
        "is not an issuer URL",
        _cluster(issuer="kubernetes.default.svc.cluster.local"),
    ),
    BadInput(
        "issuer URL without host",
        "vaultfleet:cluster.issuer",
        "'https://' is not an issuer URL",
        _cluster(issuer="https://"),
    ),
    BadInput(
        "issuer with a space",
        "vaultfleet:cluster.issuer",
        SPACES,
        _cluster(issuer="https://kubernetes.default.svc cluster"),
    ),
    BadInput("issuer empty", "vaultfleet:cluster.issuer", "must not be empty: leave issuer out", _cluster(issuer="")),
    BadInput("audience empty", "vaultfleet:roles[0].audience", BAD_AUDIENCE, _role(audience="")),
    BadInput("audience blank", "vaultfleet:roles[0].audience", BAD_AUDIENCE, _role(audience="  ")),
    BadInput(
        "audience with a space",
        "vaultfleet:roles[0].audience",
        "must be a non-empty audience without spaces",
        _role(audience="my vault"),
    ),
    # transport: plain http only to loopback, unless vaultfleet:allowInsecureHttp
    BadInput(
        "vaultAddress http to a remote host",
        "vaultfleet:vaultAddress",
        "plain http:// to a host other than loopback sends the Vault token",
        _set("vaultfleet:vaultAddress", "http://vault.example.com:8200"),
    ),
    BadInput(
        "apiHost http to a remote host",
        "vaultfleet:cluster.apiHost",
        "plain http:// to a host other than loopback sends the reviewer JWT",
        _cluster(apiHost="http://10.0.0.1:6443"),
    ),
    BadInput(
        "allowInsecureHttp not a boolean",
        "vaultfleet:allowInsecureHttp",
        "must be true or false",
        _set("vaultfleet:allowInsecureHttp", "yes"),
    ),
    BadInput(
        "vaultAddress with credentials",
        "vaultfleet:vaultAddress",
        "must not carry credentials",
        _set("vaultfleet:vaultAddress", "https://ops:pw@vault.example.com"),
    ),
    BadInput(
        "vaultAddress with a query",
        "vaultfleet:vaultAddress",
        "must not have a query or fragment",
        _set("vaultfleet:vaultAddress", "https://vault.example.com/?x=1"),
    ),
    BadInput(
        "apiHost port out of range",
        "vaultfleet:cluster.apiHost",
        "port 70000 is not between 1 and 65535",
        _cluster(apiHost="https://10.0.0.1:70000"),
    ),
    BadInput(
        "apiHost port zero",
        "vaultfleet:cluster.apiHost",
        "port 0 is not between 1 and 65535",
        _cluster(apiHost="https://10.0.0.1:0"),
    ),
    BadInput(
        "apiHost bad IPv4 address",
        "vaultfleet:cluster.apiHost",
        "'10.0.0.256' is not an IPv4 address",
        _cluster(apiHost="https://10.0.0.256:6443"),
    ),
    BadInput(
        "apiHost host name starting with a dash",
        "vaultfleet:cluster.apiHost",
        "'-api.example.com' is not a host name",
        _cluster(apiHost="https://-api.example.com"),
    ),
    # certificates that are PEM in shape only
    BadInput(
        "caCert not a certificate",
        "vaultfleet:cluster.caCert",
        "does not parse as an X.509 certificate",
        _cluster(caCert=PEM_NOT_A_CERTIFICATE),
    ),
    BadInput(
        "caCert with a private key",
        "vaultfleet:cluster.caCert",
        "must hold only certificates, and it holds a PRIVATE KEY block",
        _cluster(caCert=private_key_pem() + certificate_pem()),
    ),
    BadInput(
        "caCert expired",
        "vaultfleet:cluster.caCert",
        "Vault could verify no API server certificate with it",
        _cluster(caCert=certificate_pem(expired=True)),
    ),
    # Vault paths and names derived from the fleet keys
    BadInput(
        "kvMount reserved by Vault",
        "vaultfleet:kvMount",
        "'sys' is a path Vault reserves for itself",
        _set("vaultfleet:kvMount", "sys"),
    ),
    BadInput(
        "databaseMount is the kvMount",
        "vaultfleet:databaseMount",
        "'kv' is also the kvMount",
        _set("vaultfleet:databaseMount", "kv"),
    ),
    BadInput(
        "policies duplicate",
        "vaultfleet:policies",
        "policy template 'kv-read' is declared twice",
        _set("vaultfleet:policies", ["kv-read", "kv-write", "kv-read"]),
    ),
    BadInput(
        "databaseRoles 39 characters",
        "vaultfleet:databaseRoles[0]",
        TOO_LONG_FOR_INJECTOR,
        _set("vaultfleet:databaseRoles", ["r" * 39]),
    ),
    # policy templates
    BadInput(
        "HCL syntax error", POLICY_FILE, "HCL does not parse", policy='path "kv/data/*" {\n  capabilities = ["read"]\n'
    ),
    BadInput(
        "unknown capability",
        POLICY_FILE,
        "unknown capabilities ['reed']",
        policy='path "kv/data/*" { capabilities = ["reed"] }',
    ),
    BadInput("empty path", POLICY_FILE, "empty path", policy='path "" { capabilities = ["read"] }'),
    BadInput(
        "capabilities not a list",
        POLICY_FILE,
        "`capabilities` must be a non-empty list",
        policy='path "kv/data/*" { capabilities = "read" }',
    ),
    BadInput(
        "no path block", POLICY_FILE, "no `path` block: the policy would grant nothing", policy="# grants nothing\n"
    ),
    BadInput(
        "unknown placeholder",
        POLICY_FILE,
        "unknown or malformed placeholder 'kv'",
        policy='path "${kv}/data/*" { capabilities = ["read"] }',
    ),
    BadInput(
        "glob inside a path",
        POLICY_FILE,
        "`*` is a glob only at the end of a path",
        policy='path "kv/*/data" { capabilities = ["read"] }',
    ),
    BadInput(
        "unknown block",
        POLICY_FILE,
        "unknown top-level block(s) ['paths']",
        policy='paths "kv/data/*" { capabilities = ["read"] }',
    ),
]

SHARED_CASES = [
    BadInput(
        "connectionUrl port out of range",
        "vaultfleet:database.connections[0].connectionUrl",
        "port 99999 is not between 1 and 65535",
        _database({"connectionUrl": "postgresql://{{username}}:{{password}}@db.internal:99999/app"}),
        stack=SHARED_STACK,
    ),
    BadInput(
        "connectionUrl without host",
        "vaultfleet:database.connections[0].connectionUrl",
        "names no host",
        _database({"connectionUrl": "postgresql://{{username}}:{{password}}@/app"}),
        stack=SHARED_STACK,
    ),
    BadInput(
        "connectionUrl host with a space",
        "vaultfleet:database.connections[0].connectionUrl",
        SPACES,
        _database({"connectionUrl": "postgresql://{{username}}:{{password}}@db internal:5432/app"}),
        stack=SHARED_STACK,
    ),
    BadInput(
        "connectionUrl port not a number",
        "vaultfleet:database.connections[0].connectionUrl",
        "'db.internal:pg' is not host or host:port",
        _database({"connectionUrl": "postgresql://{{username}}:{{password}}@db.internal:pg/app"}),
        stack=SHARED_STACK,
    ),
    BadInput(
        "connectionUrl unknown sslmode",
        "vaultfleet:database.connections[0].connectionUrl",
        "sslmode 'verify' is not one of",
        _database({"connectionUrl": "postgresql://{{username}}:{{password}}@db.internal:5432/app?sslmode=verify"}),
        stack=SHARED_STACK,
    ),
    BadInput(
        "username with a space",
        "vaultfleet:database.connections[0].username",
        SPACES,
        _database({"username": "vault admin"}),
        stack=SHARED_STACK,
    ),
    BadInput(
        "username 64 bytes",
        "vaultfleet:database.connections[0].username",
        "must be at most 63 bytes",
        _database({"username": "u" * 64}),
        stack=SHARED_STACK,
    ),
    BadInput(
        "database role name 39 characters",
        "vaultfleet:database.roles[0].name",
        TOO_LONG_FOR_INJECTOR,
        _database(role={"name": "r" * 39}),
        stack=SHARED_STACK,
    ),
    BadInput(
        "kvMount reserved by Vault in the shared stack",
        "vaultfleet:kvMount",
        "'identity' is a path Vault reserves for itself",
        _set("vaultfleet:kvMount", "identity"),
        stack=SHARED_STACK,
    ),
]
