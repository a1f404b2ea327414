"""Value types of the stack-file schema: names, durations, URLs, PEM, Kubernetes names.

Each is an `Annotated` type whose validator says what is wrong in words a user can act on; the
models in schema.py and database.py are built from them. Each accepts what the system receiving
the value accepts (Vault, OpenBao, Kubernetes, PostgreSQL), or less where more would be silently
misread; docs/stack-files.md#what-each-value-must-be lists the rules.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlsplit

from cryptography import x509
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo
from pydantic.alias_generators import to_camel

# DNS-1123 label: the cluster name becomes part of Vault paths and policy names.
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_TTL_SECONDS = 90 * 86400  # longer than any sane login token; a typo guard, not a policy

# Kubernetes object names (k8s.io/apimachinery IsDNS1123Label / IsDNS1123Subdomain): a namespace is
# a DNS-1123 label, a ServiceAccount name a DNS-1123 subdomain (dot-separated labels).
_K8S_LABEL_PART = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_K8S_LABEL = re.compile(rf"^{_K8S_LABEL_PART}$")
_K8S_SUBDOMAIN = re.compile(rf"^{_K8S_LABEL_PART}(\.{_K8S_LABEL_PART})*$")
K8S_LABEL_MAX = 63
K8S_SUBDOMAIN_MAX = 253
# The reviewer's token Secret is named `<reviewerServiceAccount>-token` (components/reviewer.py), and
# a Secret name is a DNS-1123 subdomain too.
REVIEWER_ACCOUNT_MAX = K8S_SUBDOMAIN_MAX - len("-token")
# `vaultfleet consumers --kind injector` names a database role's files by annotations
# `vault.hashicorp.com/agent-inject-template-db-<role>`; the name part of an annotation key is at
# most 63 characters (Kubernetes qualified names).
DATABASE_ROLE_MAX = K8S_LABEL_MAX - len("agent-inject-template-db-")

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A host name as resolvers take it (letters, digits, '-' and '_' inside a label; labels of at most 63).
_HOST_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$")

# Vault mounts nothing at these paths (vault/mount.go protectedMounts, the same in OpenBao).
RESERVED_MOUNTS = frozenset({"audit", "auth", "cubbyhole", "identity", "sys"})

# Key in the validation context (schema.parse): vaultfleet:allowInsecureHttp as the stack sets it.
ALLOW_INSECURE_HTTP = "allow_insecure_http"


def _shown(value: str) -> str:
    """A value as messages quote it: long ones cut short."""
    return f"'{value}'" if len(value) <= 64 else f"'{value[:40]}...' ({len(value)} characters)"


def _label(value: str) -> str:
    if not _LABEL.match(value) or len(value) > 40:
        raise ValueError("must be a lowercase DNS label (a-z, 0-9, '-'), at most 40 characters")
    return value


def _database_role(value: str) -> str:
    if len(value) > DATABASE_ROLE_MAX:
        raise ValueError(
            f"must be at most {DATABASE_ROLE_MAX} characters: the injector annotation "
            f"'agent-inject-template-db-<role>' `vaultfleet consumers` writes may be at most {K8S_LABEL_MAX}"
        )
    return value


def _reserved_mount(value: str) -> str:
    if value in RESERVED_MOUNTS:
        raise ValueError(f"'{value}' is a path Vault reserves for itself ({', '.join(sorted(RESERVED_MOUNTS))})")
    return value


def _seconds(value: Any) -> int:
    """Durations as Vault writes them ('90s', '15m', '1h', '7d') or plain seconds."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as '1h' or a number of seconds")
    text = str(value).strip()
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"'{text}' is not a duration such as '90s', '15m', '1h' or '7d'")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0 or seconds > MAX_TTL_SECONDS:
        raise ValueError(f"must be between 1s and {MAX_TTL_SECONDS // 86400}d")
    return seconds


def flag(value: Any) -> bool:
    # An explicit opt-in: true or false only (the engine hands config values over as strings).
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ValueError("must be true or false")


def _pem(value: str) -> str:
    text = value.strip()
    others = sorted(set(re.findall(r"-----BEGIN ([A-Z0-9 ]+)-----", text)) - {"CERTIFICATE"})
    if others:
        # A key pasted with the certificate would sit in the stack file and in state in plaintext.
        raise ValueError(f"must hold only certificates, and it holds a {' and a '.join(others)} block")
    if not (text.startswith("-----BEGIN CERTIFICATE-----") and text.endswith("-----END CERTIFICATE-----")):
        raise ValueError("must be a PEM certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)")
    try:
        certificates = x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        raise ValueError(
            "does not parse as an X.509 certificate: paste the API server's CA as PEM "
            "(the context's certificate-authority-data, base64-decoded)"
        ) from None
    now = dt.datetime.now(dt.UTC)
    if all(c.not_valid_after_utc < now for c in certificates):
        expired = max(c.not_valid_after_utc for c in certificates)
        raise ValueError(f"expired on {expired:%Y-%m-%d}: Vault could verify no API server certificate with it")
    # Vault wants every line, the last one too, to end with a newline.
    return text + "\n"


def _host(host: str) -> str | None:
    """What is wrong with a host name or IP address (IPv6 in brackets), None when nothing is."""
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return f"'{host}' is not an IPv6 address"
        return None
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"'{host}' is not an IPv4 address"
        return None
    labels = host.split(".")
    if not host or len(host) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        return f"'{host}' is not a host name (letters, digits, '-', dot-separated labels of at most 63)"
    return None


def _host_port(text: str) -> tuple[str, int | None]:
    """Split 'host', 'host:port', '[v6]' or '[v6]:port' and check both; raises ValueError."""
    match = re.fullmatch(r"(\[[^\]]*\]|[^:\[\]]*)(?::(\d{1,5}))?", text)
    if not match:
        raise ValueError(f"'{text}' is not host or host:port")
    host, port = match.group(1), match.group(2)
    problem = _host(host)
    if problem:
        raise ValueError(problem)
    if port is not None and not 1 <= int(port) <= 65535:
        raise ValueError(f"port {port} is not between 1 and 65535")
    return host, int(port) if port is not None else None


def _url(value: str) -> str:
    if _CONTROL.search(value) or any(c.isspace() for c in value):
        raise ValueError(f"'{value.strip()}' is not an http(s) URL: it holds spaces or control characters")
    scheme, sep, rest = value.partition("://")
    if scheme.lower() not in ("http", "https") or not sep:
        raise ValueError(f"'{value}' is not an http(s) URL")
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in netloc:
        # Credentials never belong in a stack file (the token comes from VAULT_TOKEN).
        raise ValueError("must not carry credentials (user:password@)")
    if "?" in rest or "#" in rest:
        raise ValueError(f"'{value}' must not have a query or fragment: clients append API paths to it")
    try:
        _host_port(netloc)
    except ValueError as exc:
        raise ValueError(f"'{value}' is not an http(s) URL: {exc}") from None
    return value.rstrip("/")


def is_loopback_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _no_plain_http(what: str):
    """Plain http:// only to loopback, unless vaultfleet:allowInsecureHttp opts in (schema.parse)."""

    def check(value: str, info: ValidationInfo) -> str:
        if value.lower().startswith("http://") and not is_loopback_url(value):
            if not (info.context or {}).get(ALLOW_INSECURE_HTTP):
                raise ValueError(
                    f"plain http:// to a host other than loopback sends {what} unencrypted: use https://, "
                    "or set vaultfleet:allowInsecureHttp: true (docs/stack-files.md)"
                )
        return value

    return check


def _issuer(value: str) -> str:
    # Vault compares the token's `iss` claim with this string byte for byte. Kubernetes takes any
    # non-empty --service-account-issuer and wants one containing ':' to parse as a URL; every
    # current cluster (kubeadm's https://kubernetes.default.svc.cluster.local, EKS, GKE, AKS, the
    # lab) uses an http(s) URL, which OIDC discovery requires. So: such a URL, kept exactly as
    # written (a trailing slash matters), or the legacy issuer of Secret-based tokens. Anything
    # else, typically a bare host name, would make every login fail with "invalid issuer".
    if value == "kubernetes/serviceaccount":
        return value
    if not value:
        raise ValueError("must not be empty: leave issuer out to turn the iss check off")
    if _CONTROL.search(value) or any(c.isspace() for c in value):
        raise ValueError("must not hold spaces or control characters: Vault compares it with the tokens' iss claim")
    scheme, sep, rest = value.partition("://")
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if scheme not in ("http", "https") or not sep or not netloc or "@" in netloc:
        raise ValueError(
            f"'{value}' is not an issuer URL such as https://kubernetes.default.svc.cluster.local: "
            "write the cluster's --service-account-issuer (the iss of its tokens) exactly"
        )
    if "?" in rest or "#" in rest:
        raise ValueError("an issuer URL has no query or fragment (OpenID Connect discovery)")
    try:
        _host_port(netloc)
    except ValueError as exc:
        raise ValueError(f"'{value}' is not an issuer URL: {exc}") from None
    return value


def _kube_context(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not hold control characters")
    if value != value.strip():
        raise ValueError("must not start or end with spaces (no kubeconfig context is named so)")
    return value


def _audience(value: str) -> str:
    # An empty or blank audience is what Vault reads as "no audience": any token would pass.
    if not value or _CONTROL.search(value) or any(c.isspace() for c in value):
        raise ValueError(
            "must be a non-empty audience without spaces or control characters (the tokens' aud claim); "
            "leave audience out to accept any"
        )
    return value


def _namespace(value: str) -> str:
    if len(value) > K8S_LABEL_MAX or not _K8S_LABEL.match(value):
        raise ValueError(
            f"{_shown(value)} is not a Kubernetes namespace name: a DNS-1123 label (a-z, 0-9, '-', starting and "
            f"ending with a letter or digit), at most {K8S_LABEL_MAX} characters"
        )
    return value


def _service_account(value: str, limit: int = K8S_SUBDOMAIN_MAX) -> str:
    if len(value) > limit or not _K8S_SUBDOMAIN.match(value):
        raise ValueError(
            f"{_shown(value)} is not a Kubernetes ServiceAccount name: a DNS-1123 subdomain (a-z, 0-9, '-' and '.' "
            f"between them), at most {limit} characters"
        )
    return value


def _reviewer_account(value: str) -> str:
    return _service_account(value, REVIEWER_ACCOUNT_MAX)


def _bound(what: str, check):
    """Bound names for a Vault kubernetes role: names, or '*' alone (any)."""

    def validate(values: list[str]) -> list[str]:
        # Vault refuses '*' mixed with names ("can not mix"). It reads 'app-*' or '*-app' as a glob,
        # and any other '*' literally (a name matching nothing); vaultfleet's consumers, verify and
        # access read names literally too: '*' counts only alone.
        if "*" in values and len(values) > 1:
            raise ValueError(f"'*' (any {what}) stands alone: Vault refuses it mixed with names")
        for v in values:
            if v != "*" and "*" in v:
                raise ValueError(f"{_shown(v)}: '*' is accepted only alone, for any {what}; list the names instead")
            if v != "*":
                check(v)
        return values

    return validate


def _postgres_url(value: str) -> str:
    # Never echo the value: a URL with a password in it is exactly what this check refuses.
    scheme, sep, rest = value.partition("://")
    if scheme not in ("postgres", "postgresql") or not sep:
        raise ValueError("must be a postgresql:// URL")
    userinfo, at, hostpart = rest.partition("@")
    if not at or userinfo != "{{username}}:{{password}}" or not hostpart:
        # Vault fills in the templates from `username` and `password`; credentials written into the
        # URL would sit in the stack file and in state in plaintext.
        raise ValueError(
            "must start postgresql://{{username}}:{{password}}@<host>:<port>/ (Vault's templating); "
            "the password belongs in `password`, a Pulumi secret"
        )
    if _CONTROL.search(hostpart) or any(c.isspace() for c in hostpart):
        raise ValueError("must not hold spaces or control characters")
    hosts, _, tail = hostpart.partition("/")
    hosts, _, query = hosts.partition("?")
    query = query or tail.partition("?")[2]
    if not hosts:
        raise ValueError("names no host: postgresql://{{username}}:{{password}}@<host>:<port>/<database>")
    for entry in hosts.split(","):  # pgx takes a list of hosts to try in turn
        try:
            _host_port(entry)
        except ValueError as exc:
            raise ValueError(f"names a bad host: {exc}") from None
    modes = [v for k, v in parse_qsl(query, keep_blank_values=True) if k == "sslmode"]
    for mode in modes:
        if mode not in _SSLMODES:
            raise ValueError(f"sslmode '{mode}' is not one of {', '.join(_SSLMODES)}")
    return value


_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def _postgres_user(value: str) -> str:
    if _CONTROL.search(value) or any(c.isspace() for c in value):
        raise ValueError("must not hold spaces or control characters")
    if len(value.encode()) > 63:
        # PostgreSQL cuts longer names to 63 bytes (NAMEDATALEN): it would log in as someone else.
        raise ValueError("must be at most 63 bytes (PostgreSQL's limit for a role name)")
    return value


def _statements(values: list[str]) -> list[str]:
    for v in values:
        if not v.strip():
            raise ValueError("a statement is empty")
    return values


Label = Annotated[str, AfterValidator(_label)]
MountPath = Annotated[str, AfterValidator(_label), AfterValidator(_reserved_mount)]
DatabaseRoleName = Annotated[str, AfterValidator(_label), AfterValidator(_database_role)]
Seconds = Annotated[int, BeforeValidator(_seconds)]
Flag = Annotated[bool, BeforeValidator(flag)]
Pem = Annotated[str, AfterValidator(_pem)]
Url = Annotated[str, AfterValidator(_url)]
VaultUrl = Annotated[str, AfterValidator(_url), AfterValidator(_no_plain_http("the Vault token"))]
ApiServerUrl = Annotated[
    str, AfterValidator(_url), AfterValidator(_no_plain_http("the reviewer JWT and every login's token"))
]
Issuer = Annotated[str, AfterValidator(_issuer)]
KubeContext = Annotated[str, Field(min_length=1), AfterValidator(_kube_context)]
Audience = Annotated[str, AfterValidator(_audience)]
K8sNamespace = Annotated[str, AfterValidator(_namespace)]
ReviewerAccount = Annotated[str, AfterValidator(_reviewer_account)]
BoundServiceAccounts = Annotated[
    list[str], Field(min_length=1), AfterValidator(_bound("ServiceAccount", _service_account))
]
BoundNamespaces = Annotated[list[str], Field(min_length=1), AfterValidator(_bound("namespace", _namespace))]
PostgresUrl = Annotated[str, AfterValidator(_postgres_url)]
PostgresUser = Annotated[str, Field(min_length=1), AfterValidator(_postgres_user)]
Statements = Annotated[list[str], AfterValidator(_statements)]


class Model(BaseModel):
    # Unknown keys are errors: a typo such as `audiences` must not silently mean "no audience".
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=False, frozen=True)


def unique(what: str, names: list[str]) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what} '{name}' is declared twice")
        seen.add(name)
