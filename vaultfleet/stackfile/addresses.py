"""Addresses in stack files: API server and Vault URLs (and whether plain http is allowed to
them), the ServiceAccount issuer, PostgreSQL connection URLs and user names.

Split from fields.py, which builds the schema's value types from these checks.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qsl, urlsplit

from pydantic import ValidationInfo

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A host name as resolvers take it (letters, digits, '-' and '_' inside a label; labels of at most 63).
_HOST_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$")

# Key in the validation context (schema.parse): vaultfleet:allowInsecureHttp as the stack sets it.
ALLOW_INSECURE_HTTP = "allow_insecure_http"


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


def url(value: str) -> str:
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


def no_plain_http(what: str):
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


def issuer(value: str) -> str:
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


def postgres_url(value: str) -> str:
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


def postgres_user(value: str) -> str:
    if _CONTROL.search(value) or any(c.isspace() for c in value):
        raise ValueError("must not hold spaces or control characters")
    if len(value.encode()) > 63:
        # PostgreSQL cuts longer names to 63 bytes (NAMEDATALEN): it would log in as someone else.
        raise ValueError("must be at most 63 bytes (PostgreSQL's limit for a role name)")
    return value
