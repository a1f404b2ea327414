"""The stack-file schema: what a stack may say under `vaultfleet:` (Pulumi.yaml and stacks/).

One parser serves `pulumi up`/`preview` (values from the engine) and `vaultfleet validate` (values
read from the files), so both refuse the same input with the same message: file, field, what is
wrong. The keys are documented in docs/stack-files.md.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Collection
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from vaultfleet.project.database import DatabaseSettings, secret_passwords
from vaultfleet.project.errors import NAMESPACE, ConfigError
from vaultfleet.project.fields import K8sNames, Label, Model, Pem, Seconds, Url, unique

__all__ = ["NAMESPACE", "ClusterStack", "ConfigError", "SharedStack", "parse"]


class ClusterSettings(Model):
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


class Role(Model):
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
    def _ttl_within_max(self) -> Role:
        if self.max_ttl is not None and self.ttl > self.max_ttl:
            raise ValueError(f"ttl ({self.ttl}s) is above maxTtl ({self.max_ttl}s)")
        return self

    @model_validator(mode="after")
    def _consumers_need_names(self) -> Role:
        if self.consumers:
            if len(set(self.consumers)) < len(self.consumers):
                raise ValueError("consumers: each kind once")
            for field, names in (("namespaces", self.namespaces), ("serviceAccounts", self.service_accounts)):
                if all(n == "*" for n in names):
                    raise ValueError(f"consumers: objects go to named {field}, and this role binds only '*'")
        return self


class Fleet(Model):
    """Fleet-wide settings, normally set once in Pulumi.yaml."""

    vault_address: Url
    mount_prefix: Label = "k8s"
    kv_mount: Label = "kv"
    database_mount: Label = "database"
    """Path of the database secrets engine: the shared stack mounts it, cluster policies point at it."""


class ClusterStack(Model):
    """A cluster stack: one Kubernetes cluster onboarded to the fleet's Vault."""

    kind: Literal["cluster"] = "cluster"
    name: Label
    fleet: Fleet
    cluster: ClusterSettings
    policies: list[Label] = Field(default_factory=lambda: ["kv-read", "kv-write"])
    """Templates from policies/ rendered for this cluster."""
    roles: list[Role] = Field(default_factory=list)
    database_roles: list[Label] = Field(default_factory=list)
    """Database roles (of the shared stack's engine) whose credentials this cluster's `db-creds`
    policy may read; no others, so a cluster never reads credentials it did not declare."""

    @field_validator("roles")
    @classmethod
    def _unique_roles(cls, roles: list[Role]) -> list[Role]:
        unique("role", [r.name for r in roles])
        return roles

    @field_validator("database_roles")
    @classmethod
    def _unique_database_roles(cls, names: list[str]) -> list[str]:
        unique("database role", names)
        return names

    @model_validator(mode="after")
    def _roles_name_rendered_policies(self) -> ClusterStack:
        for i, role in enumerate(self.roles):
            for p in role.policies:
                if p not in self.policies:
                    raise ValueError(f"roles[{i}].policies: '{p}' is not among this cluster's policies {self.policies}")
        return self

    @property
    def mount_path(self) -> str:
        return f"{self.fleet.mount_prefix}-{self.name}"

    def policy_name(self, template: str) -> str:
        # Prefixed like the mount, so the provisioner policy can be scoped to `k8s-*` names.
        return f"{self.mount_path}-{template}"


class SharedStack(Model):
    """The shared stack: Vault objects the whole fleet uses (KV v2 mount, provisioner policy,
    optionally the database secrets engine)."""

    kind: Literal["shared"]
    name: Label
    fleet: Fleet
    database: DatabaseSettings | None = None


# Keys a stack file may set under `vaultfleet:` (camelCase, as written in the files).
_FLEET_KEYS = {"vaultAddress", "mountPrefix", "kvMount", "databaseMount"}
_CLUSTER_KEYS = {"cluster", "roles", "policies", "databaseRoles"}
_SHARED_KEYS = {"database"}
_KNOWN_KEYS = _FLEET_KEYS | _CLUSTER_KEYS | _SHARED_KEYS | {"kind"}


def parse(
    values: dict[str, Any], stack: str, source: str, secret_keys: Collection[str] = ()
) -> ClusterStack | SharedStack:
    """Validate the `vaultfleet:` values of one stack (keys without the namespace).

    `source` names the file the errors point at (the stack file). `secret_keys` are the keys the
    engine holds as secrets (`decode_secret_keys`); a password must be one of those, or be written
    as `secure:` ciphertext when the values come straight from a stack file. Raises ConfigError.
    """
    problems: list[tuple[str, str, str]] = []
    for key in values:
        if key not in _KNOWN_KEYS:
            hint = difflib.get_close_matches(key, sorted(_KNOWN_KEYS), n=1)
            problems.append(
                (
                    source,
                    f"{NAMESPACE}:{key}",
                    "unknown key" + (f" (did you mean '{NAMESPACE}:{hint[0]}'?)" if hint else ""),
                )
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
        if "database" in values:
            document["database"] = secret_passwords(values["database"], "database" in secret_keys, source)
        model: type[ClusterStack | SharedStack] = SharedStack
    else:
        extra = sorted(k for k in _SHARED_KEYS if k in values)
        if extra:
            raise ConfigError(
                [
                    (source, f"{NAMESPACE}:{k}", "only the shared stack (vaultfleet:kind: shared) may declare it")
                    for k in extra
                ]
            )
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
            values[key[len(prefix) :]] = json.loads(text)
        except (json.JSONDecodeError, TypeError):
            values[key[len(prefix) :]] = text
    return values


def decode_secret_keys(keys: list[str]) -> frozenset[str]:
    """The engine's secret config keys ('namespace:key'), as keys of the `vaultfleet:` namespace."""
    prefix = f"{NAMESPACE}:"
    return frozenset(k[len(prefix) :] for k in keys if k.startswith(prefix))
