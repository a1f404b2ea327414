"""The stack file schema: what a user may write under `vaultfleet:` in Pulumi.yaml and stacks/.

One loader serves `pulumi up` (values from the engine) and `vaultfleet validate` (values read from
the files), so both reject the same input with the same message: file, field, what is wrong.

A cluster stack file, with everything fleet-wide left to the defaults in Pulumi.yaml:

    config:
      vaultfleet:cluster:
        kubeContext: lab-a
      vaultfleet:roles:
        - name: app
          serviceAccounts: [app]
          namespaces: [app]
          policies: [kv-read]
          audience: vault
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

NAMESPACE = "vaultfleet"

# DNS-1123 label: the cluster name becomes part of Vault paths and policy names.
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_K8S_NAME = re.compile(r"^[a-z0-9*]([-a-z0-9.*]*[a-z0-9*])?$")
_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_TTL_SECONDS = 90 * 86400  # longer than any sane login token; a typo guard, not a policy


class ConfigError(ValueError):
    """Invalid configuration; `problems` holds one (file, field, message) per error."""

    def __init__(self, problems: list[tuple[str, str, str]]):
        self.problems = problems
        super().__init__("\n".join(f"{f}: {fld}: {msg}" for f, fld, msg in problems))


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


Label = Annotated[str, AfterValidator(_label)]
Seconds = Annotated[int, BeforeValidator(_seconds)]
Pem = Annotated[str, AfterValidator(_pem)]
Url = Annotated[str, AfterValidator(_url)]
K8sNames = Annotated[list[str], Field(min_length=1), AfterValidator(_k8s_names)]


class _Model(BaseModel):
    # Unknown keys are errors: a typo such as `audiences` must not silently mean "no audience".
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=False, frozen=True)


class ClusterSettings(_Model):
    """How to reach the cluster, from vaultfleet (kube context) and from Vault (host and CA)."""

    kube_context: str = Field(min_length=1)
    """kubeconfig context used to create the reviewer ServiceAccount."""
    api_host: Url | None = None
    """API server URL as Vault reaches it; default: the context's server."""
    ca_cert: Pem | None = None
    """PEM CA of the API server; default: the context's certificate-authority(-data)."""
    issuer: str | None = None
    """ServiceAccount token issuer; when set, Vault checks the token's `iss` claim against it."""
    reviewer_namespace: str = "kube-system"
    reviewer_service_account: str = "vault-auth"


class Role(_Model):
    """A Vault role at the cluster's mount: these ServiceAccounts x namespaces get these policies."""

    name: Label
    service_accounts: K8sNames
    namespaces: K8sNames
    policies: list[Label] = Field(min_length=1)
    """Policy template names (files in policies/); each becomes the policy <mount path>-<name>."""
    ttl: Seconds = 3600
    max_ttl: Seconds | None = None
    audience: str | None = None
    consumers: list[Literal["eso", "vso"]] = Field(default_factory=list)
    """Objects `up` creates in each bound namespace for the role's first ServiceAccount:
    eso (external-secrets SecretStore), vso (Vault Secrets Operator VaultConnection + VaultAuth)."""

    @model_validator(mode="after")
    def _ttl_within_max(self) -> "Role":
        if self.max_ttl is not None and self.ttl > self.max_ttl:
            raise ValueError(f"ttl ({self.ttl}s) is above maxTtl ({self.max_ttl}s)")
        return self

    @model_validator(mode="after")
    def _consumers_need_names(self) -> "Role":
        if self.consumers:
            if len(set(self.consumers)) < len(self.consumers):
                raise ValueError("consumers: each kind once")
            for field, names in (("namespaces", self.namespaces), ("serviceAccounts", self.service_accounts)):
                if all(n == "*" for n in names):
                    raise ValueError(f"consumers: objects go to named {field}, and this role binds only '*'")
        return self


class Fleet(_Model):
    """Fleet-wide settings, normally set once in Pulumi.yaml."""

    vault_address: Url
    mount_prefix: Label = "k8s"
    kv_mount: Label = "kv"


class ClusterStack(_Model):
    """A cluster stack: one Kubernetes cluster onboarded to the fleet's Vault."""

    kind: Literal["cluster"] = "cluster"
    name: Label
    fleet: Fleet
    cluster: ClusterSettings
    policies: list[Label] = Field(default_factory=lambda: ["kv-read", "kv-write"])
    """Templates from policies/ rendered for this cluster."""
    roles: list[Role] = Field(default_factory=list)

    @field_validator("roles")
    @classmethod
    def _unique_roles(cls, roles: list[Role]) -> list[Role]:
        seen = set()
        for r in roles:
            if r.name in seen:
                raise ValueError(f"role '{r.name}' is declared twice")
            seen.add(r.name)
        return roles

    @model_validator(mode="after")
    def _roles_name_rendered_policies(self) -> "ClusterStack":
        for i, role in enumerate(self.roles):
            for p in role.policies:
                if p not in self.policies:
                    raise ValueError(
                        f"roles[{i}].policies: '{p}' is not among this cluster's policies {self.policies}"
                    )
        return self

    @property
    def mount_path(self) -> str:
        return f"{self.fleet.mount_prefix}-{self.name}"

    def policy_name(self, template: str) -> str:
        # Prefixed like the mount, so the provisioner policy can be scoped to `k8s-*` names.
        return f"{self.mount_path}-{template}"


class SharedStack(_Model):
    """The shared stack: Vault objects the whole fleet uses (KV v2 mount, provisioner policy)."""

    kind: Literal["shared"]
    name: Label
    fleet: Fleet


# Keys a stack file may set under `vaultfleet:` (camelCase, as written in the files).
_FLEET_KEYS = {"vaultAddress", "mountPrefix", "kvMount"}
_CLUSTER_KEYS = {"cluster", "roles", "policies"}
_KNOWN_KEYS = _FLEET_KEYS | _CLUSTER_KEYS | {"kind"}


def parse(values: dict[str, Any], stack: str, source: str) -> ClusterStack | SharedStack:
    """Validate the `vaultfleet:` values of one stack (keys without the namespace).

    `source` names the file the errors point at (the stack file). Raises ConfigError.
    """
    problems: list[tuple[str, str, str]] = []
    for key in values:
        if key not in _KNOWN_KEYS:
            hint = difflib.get_close_matches(key, sorted(_KNOWN_KEYS), n=1)
            problems.append(
                (source, f"{NAMESPACE}:{key}", "unknown key" + (f" (did you mean '{NAMESPACE}:{hint[0]}'?)" if hint else ""))
            )
    if problems:
        raise ConfigError(problems)

    document = {
        "kind": values.get("kind", "cluster"),
        "name": stack,
        "fleet": {k: values[k] for k in _FLEET_KEYS if k in values},
    }
    if document["kind"] == "shared":
        extra = sorted(k for k in _CLUSTER_KEYS if k in values)
        if extra:
            raise ConfigError([(source, f"{NAMESPACE}:{k}", "not allowed in the shared stack") for k in extra])
        model: type[ClusterStack | SharedStack] = SharedStack
    else:
        document.update({k: values[k] for k in _CLUSTER_KEYS if k in values})
        model = ClusterStack
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise ConfigError([(source, _field_name(e["loc"]), _message(e)) for e in exc.errors()]) from None


def _field_name(loc: tuple) -> str:
    """('roles', 0, 'maxTtl') -> 'vaultfleet:roles[0].maxTtl'; fleet keys sit at the top level."""
    parts = [p for p in loc if p not in ("fleet",) and not str(p).startswith(("function-", "constrained-"))]
    if not parts:
        return f"{NAMESPACE}"
    text = f"{NAMESPACE}:{parts[0]}"
    for p in parts[1:]:
        text += f"[{p}]" if isinstance(p, int) else f".{p}"
    return text


def _message(error: dict) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "missing":
        return "required field is missing"
    msg = error["msg"]
    return msg.removeprefix("Value error, ")


def decode_engine_config(raw: dict[str, str]) -> dict[str, Any]:
    """The engine passes config as 'namespace:key' -> string (objects and lists as JSON)."""
    values: dict[str, Any] = {}
    prefix = f"{NAMESPACE}:"
    for key, text in raw.items():
        if not key.startswith(prefix):
            continue
        try:
            values[key[len(prefix):]] = json.loads(text)
        except (json.JSONDecodeError, TypeError):
            values[key[len(prefix):]] = text
    return values


def stack_file(project_dir: Path, stack: str) -> Path:
    return project_dir / "stacks" / f"Pulumi.{stack}.yaml"
