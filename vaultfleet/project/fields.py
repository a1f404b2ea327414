"""Value types of the stack-file schema: names, durations, URLs, PEM, Kubernetes names.

Each is an `Annotated` type whose validator says what is wrong in words a user can act on; the
models in schema.py and database.py are built from them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

# DNS-1123 label: the cluster name becomes part of Vault paths and policy names.
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_K8S_NAME = re.compile(r"^[a-z0-9*]([-a-z0-9.*]*[a-z0-9*])?$")
_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_TTL_SECONDS = 90 * 86400  # longer than any sane login token; a typo guard, not a policy


def _label(value: str) -> str:
    if not _LABEL.match(value) or len(value) > 40:
        raise ValueError("must be a lowercase DNS label (a-z, 0-9, '-'), at most 40 characters")
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


def _pem(value: str) -> str:
    text = value.strip()
    if not (text.startswith("-----BEGIN CERTIFICATE-----") and text.endswith("-----END CERTIFICATE-----")):
        raise ValueError("must be a PEM certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)")
    return text + "\n"


def _url(value: str) -> str:
    if not re.match(r"^https?://[^\s/:]+(:\d{1,5})?(/\S*)?$", value):
        raise ValueError(f"'{value}' is not an http(s) URL")
    return value.rstrip("/")


def _k8s_names(values: list[str]) -> list[str]:
    for v in values:
        if not _K8S_NAME.match(v):
            raise ValueError(f"'{v}' is not a Kubernetes name (or '*')")
    return values


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
    return value


def _statements(values: list[str]) -> list[str]:
    for v in values:
        if not v.strip():
            raise ValueError("a statement is empty")
    return values


Label = Annotated[str, AfterValidator(_label)]
Seconds = Annotated[int, BeforeValidator(_seconds)]
Pem = Annotated[str, AfterValidator(_pem)]
Url = Annotated[str, AfterValidator(_url)]
K8sNames = Annotated[list[str], Field(min_length=1), AfterValidator(_k8s_names)]
PostgresUrl = Annotated[str, AfterValidator(_postgres_url)]
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
