"""Value types of the stack-file schema: names, durations, PEM, Kubernetes names, and the address
checks of addresses.py.

Each is an `Annotated` type whose validator says what is wrong in words a user can act on; the
models in schema.py and database.py are built from them. Each accepts what the system receiving
the value accepts (Vault, OpenBao, Kubernetes, PostgreSQL), or less where more would be silently
misread; docs/stack-files.md#what-each-value-must-be lists the rules.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

from vaultfleet.stackfile.addresses import issuer, no_plain_http, postgres_url, postgres_user, url

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
# Vault mounts nothing at these paths (vault/mount.go protectedMounts, the same in OpenBao).
RESERVED_MOUNTS = frozenset({"audit", "auth", "cubbyhole", "identity", "sys"})
# Vault's own auth mount (auth/token) cannot be replaced.
RESERVED_AUTH_MOUNTS = frozenset({"token"})
# A Vault policy name as vaultfleet attaches one it does not manage (roles[].existingPolicies):
# Vault lowercases names, and these characters need no quoting in a path or an HCL string.
_POLICY_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,127}$")


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


def _reserved_auth_mount(value: str) -> str:
    if value in RESERVED_AUTH_MOUNTS:
        raise ValueError(f"'{value}' is Vault's own auth mount (auth/{value})")
    return value


def _policy_name(value: str) -> str:
    if not _POLICY_NAME.match(value):
        raise ValueError("must be a Vault policy name: lowercase a-z, 0-9, '_', '.', '-', at most 128 characters")
    if value == "root":
        raise ValueError("'root' is Vault's unlimited policy: no role of the fleet may attach it")
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
    from cryptography import x509  # here: 18 ms to import, and most stack files have no caCert

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
    if value.startswith("*") or value.endswith("*"):
        # The applier policy pins it, and Vault's allowed_parameters reads a string with a leading
        # or trailing `*` as a glob: the applier could then write any audience it matches.
        raise ValueError("must not start or end with '*' (an audience is matched exactly, never as a glob)")
    return value


def _k8s_group(value: str) -> str:
    if not value or len(value) > 253 or _CONTROL.search(value) or any(c.isspace() for c in value):
        raise ValueError("must be a Kubernetes group name: non-empty, at most 253 characters, no spaces")
    if value.startswith("system:"):
        # system:authenticated (every identity) or another built-in group would widen it to many.
        raise ValueError(f"'{value}' is a built-in group: name a group only the previewer is in")
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


def _statements(values: list[str]) -> list[str]:
    for v in values:
        if not v.strip():
            raise ValueError("a statement is empty")
    return values


Label = Annotated[str, AfterValidator(_label)]
MountPath = Annotated[str, AfterValidator(_label), AfterValidator(_reserved_mount)]
AuthMountPath = Annotated[str, AfterValidator(_label), AfterValidator(_reserved_auth_mount)]
PolicyName = Annotated[str, AfterValidator(_policy_name)]
DatabaseRoleName = Annotated[str, AfterValidator(_label), AfterValidator(_database_role)]
Seconds = Annotated[int, BeforeValidator(_seconds)]
Flag = Annotated[bool, BeforeValidator(flag)]
Pem = Annotated[str, AfterValidator(_pem)]
Url = Annotated[str, AfterValidator(url)]
VaultUrl = Annotated[str, AfterValidator(url), AfterValidator(no_plain_http("the Vault token"))]
ApiServerUrl = Annotated[
    str, AfterValidator(url), AfterValidator(no_plain_http("the reviewer JWT and every login's token"))
]
Issuer = Annotated[str, AfterValidator(issuer)]
KubeContext = Annotated[str, Field(min_length=1), AfterValidator(_kube_context)]
Audience = Annotated[str, AfterValidator(_audience)]
K8sNamespace = Annotated[str, AfterValidator(_namespace)]
ReviewerAccount = Annotated[str, AfterValidator(_reviewer_account)]
K8sGroup = Annotated[str, AfterValidator(_k8s_group)]
BoundServiceAccounts = Annotated[
    list[str], Field(min_length=1), AfterValidator(_bound("ServiceAccount", _service_account))
]
BoundNamespaces = Annotated[list[str], Field(min_length=1), AfterValidator(_bound("namespace", _namespace))]
PostgresUrl = Annotated[str, AfterValidator(postgres_url)]
PostgresUser = Annotated[str, Field(min_length=1), AfterValidator(postgres_user)]
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
