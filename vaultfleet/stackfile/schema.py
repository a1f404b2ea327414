"""The stack-file schema: what a stack may say under `vaultfleet:` (Pulumi.yaml and stacks/).

One parser serves `pulumi up`/`preview` (values from the engine) and `vaultfleet validate` (values
read from the files), so both refuse the same input with the same message: file, field, what is
wrong. The keys are documented in docs/stack-files.md. Kept in one module (about 380 lines) on
purpose: every key a stack file may hold, and every cross-field rule, is read in one place.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Collection
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from vaultfleet.stackfile.addresses import ALLOW_INSECURE_HTTP
from vaultfleet.stackfile.database import DatabaseSettings, secret_passwords
from vaultfleet.stackfile.errors import NAMESPACE, ConfigError
from vaultfleet.stackfile.fields import (
    ApiServerUrl,
    Audience,
    AuthMountPath,
    BoundNamespaces,
    BoundServiceAccounts,
    DatabaseRoleName,
    Flag,
    Issuer,
    K8sGroup,
    K8sNamespace,
    KubeContext,
    Label,
    Model,
    MountPath,
    Pem,
    PolicyName,
    ReviewerAccount,
    Seconds,
    VaultUrl,
    flag,
    unique,
)
from vaultfleet.stackfile.pipeline import HASHIVAULT, PipelineSettings, state_key_name

__all__ = ["NAMESPACE", "ClusterStack", "ConfigError", "SharedStack", "parse"]


class ClusterSettings(Model):
    """How to reach the cluster, from vaultfleet (kube context) and from Vault (host and CA)."""

    kube_context: KubeContext
    """kubeconfig context used to create the reviewer ServiceAccount."""
    api_host: ApiServerUrl | None = None
    """API server URL as Vault reaches it; default: the context's server. Plain http:// only to
    loopback or with vaultfleet:allowInsecureHttp: Vault sends the reviewer JWT and the logins' JWTs."""
    ca_cert: Pem | None = None
    """PEM CA of the API server (parsed as X.509); default: the context's certificate-authority(-data)."""
    issuer: Issuer | None = None
    """ServiceAccount token issuer; when set, Vault checks the token's `iss` claim against it."""
    reviewer_namespace: K8sNamespace = "kube-system"
    """Namespace of the reviewer ServiceAccount (it must exist)."""
    reviewer_service_account: ReviewerAccount = "vault-auth"
    """The reviewer ServiceAccount; its token Secret is `<name>-token` unless reviewerTokenSecret says."""
    reviewer_token_secret: ReviewerAccount | None = None
    """Name of the reviewer's token Secret (default `<reviewerServiceAccount>-token`). A new name
    rotates the reviewer token with no gap: `up` makes the new Secret first, writes its token into
    Vault, then deletes the old Secret (which invalidates the old token)."""

    reviewer_binding: ReviewerAccount | None = None
    """Name of the reviewer's ClusterRoleBinding to system:auth-delegator (default
    `<reviewerServiceAccount>-<reviewerNamespace>-auth-delegator`): an adopted cluster keeps its own."""
    adopted: Flag = False
    """The mount existed before vaultfleet (`vaultfleet adopt` writes this): a `destroy`, or a run
    of the shared stack without this file, leaves the mount, and every token and lease it issued,
    in place instead of disabling it. Its roles and config go with the cluster's stack as usual."""
    mount_path: AuthMountPath | None = None
    """The cluster's auth mount, auth/<mountPath> (default `<mountPrefix>-<cluster>`): an adopted
    cluster keeps the path its workloads already log in at. Its policies keep the fleet's names."""

    @property
    def token_secret(self) -> str:
        return self.reviewer_token_secret or f"{self.reviewer_service_account}-token"

    auth_mode: Literal["reviewer-token", "client-jwt", "jwt"] = "reviewer-token"
    """How Vault checks a login's ServiceAccount token (docs/auth-modes.md): `reviewer-token`, with
    the token of a reviewer ServiceAccount vaultfleet makes and stores in Vault; `client-jwt`, with
    the login's own token (no reviewer token anywhere; the roles' ServiceAccounts get
    system:auth-delegator, and their tokens must be valid for the API server's audience); `jwt`,
    Vault's jwt auth method at the cluster's mount, checking signatures with the cluster's
    ServiceAccount issuer keys (read from its JWKS at every run; no TokenReview at all)."""
    previewer_group: K8sGroup | None = None
    """A Kubernetes group (as the cluster authenticates the pipeline's previewer) given `get` on
    exactly the objects this stack makes in the cluster, for `preview --refresh`; None: no grant."""


class Role(Model):
    """A Vault role at the cluster's mount: these ServiceAccounts x namespaces get these policies."""

    name: Label
    service_accounts: BoundServiceAccounts
    """ServiceAccount names (DNS-1123 subdomains), or `*` alone for any."""
    namespaces: BoundNamespaces
    """Namespace names (DNS-1123 labels), or `*` alone for any."""
    policies: list[Label] = Field(default_factory=list)
    """Policy template names (files in policies/); each becomes the policy <mountPrefix>-<cluster>-<name>."""
    existing_policies: list[PolicyName] = Field(default_factory=list)
    """Vault policies attached by name as they are, not written by vaultfleet (an adopted
    cluster's hand-made policies): their bodies are reviewed wherever they are kept today."""
    ttl: Seconds = 3600
    max_ttl: Seconds | None = None
    audience: Audience | None = None
    """Required `aud` claim of the login JWT; None accepts any audience (validate warns)."""
    token_type: Literal["service", "default"] = "service"
    """The role's token type: `service`, written explicitly, or `default` (the mount's default,
    service tokens unless the mount is tuned otherwise), which an adopted role may keep. Batch
    tokens are refused: they cannot be revoked one by one."""
    consumers: list[Literal["eso", "vso"]] = Field(default_factory=list)
    """Objects `up` creates in each bound namespace for the role's first ServiceAccount:
    eso (external-secrets SecretStore), vso (Vault Secrets Operator VaultConnection + VaultAuth)."""

    @model_validator(mode="after")
    def _ttl_within_max(self) -> Role:
        if self.max_ttl is not None and self.ttl > self.max_ttl:
            raise ValueError(f"ttl ({self.ttl}s) is above maxTtl ({self.max_ttl}s)")
        return self

    @model_validator(mode="after")
    def _attaches_policies(self) -> Role:
        if not self.policies and not self.existing_policies:
            raise ValueError("policies: a role attaches at least one policy (policies or existingPolicies)")
        for field, names in (("policies", self.policies), ("existingPolicies", self.existing_policies)):
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"{field}: {', '.join(twice)} named more than once")
        return self

    @model_validator(mode="after")
    def _consumers_need_names(self) -> Role:
        if self.consumers:
            if len(set(self.consumers)) < len(self.consumers):
                raise ValueError("consumers: each kind once")
            for field, names in (("namespaces", self.namespaces), ("serviceAccounts", self.service_accounts)):
                if names == ["*"]:
                    raise ValueError(f"consumers: objects go to named {field}, and this role binds only '*'")
        return self


class Fleet(Model):
    """Fleet-wide settings, normally set once in Pulumi.yaml."""

    allow_insecure_http: Flag = False
    """Allow plain http:// to a Vault address or API host that is not loopback (a lab on another
    machine, a Vault behind a sidecar proxy); the URL checks read it from parse's validation context."""
    vault_address: VaultUrl
    mount_prefix: Label = "k8s"
    kv_mount: MountPath = "kv"
    database_mount: MountPath = "database"
    """Path of the database secrets engine: the shared stack mounts it, cluster policies point at it."""
    cluster_access: Literal["shared", "per-cluster"] = "shared"
    """Where each cluster's mount, policy bodies and applier policy are written: by the shared stack
    (`shared`), or by the cluster's own privileged stack vault.<cluster> (`per-cluster`). Pulumi.yaml
    only (stackfile.CLUSTER_ACCESS_KEY)."""

    @field_validator("mount_prefix")
    @classmethod
    def _not_vaultfleets(cls, value: str) -> str:
        # vaultfleet's own policies are vaultfleet-apply-<cluster>, vaultfleet-preview-<cluster> and
        # vaultfleet-previewer, held by the pipeline's identities: a cluster's policy bodies
        # (<mountPrefix>-<cluster>-<template>) must never be written under one of those names.
        if value == "vaultfleet" or value.startswith("vaultfleet-"):
            raise ValueError("may not be vaultfleet or start with vaultfleet-: vaultfleet's own policies are named so")
        return value

    @field_validator("database_mount")
    @classmethod
    def _mounts_apart(cls, value: str, info: ValidationInfo) -> str:
        if value == info.data.get("kv_mount"):
            raise ValueError(f"'{value}' is also the kvMount: the shared stack mounts both, and Vault one per path")
        return value


class ClusterStack(Model):
    """A cluster stack: one Kubernetes cluster onboarded to the fleet's Vault."""

    kind: Literal["cluster"] = "cluster"
    name: Label
    fleet: Fleet
    cluster: ClusterSettings
    policies: list[Label] = Field(default_factory=lambda: ["kv-read", "kv-write"])
    """Templates from policies/ rendered for this cluster."""
    roles: list[Role] = Field(default_factory=list)
    database_roles: list[DatabaseRoleName] = Field(default_factory=list)
    """Database roles (of the shared stack's engine) whose credentials this cluster's `db-creds`
    policy may read; no others, so a cluster never reads credentials it did not declare."""
    state_key: str | None = None
    """The Transit key of the stack's state when its stack file says `secretsprovider:
    hashivault://vaultfleet-<name>` (the shared stack makes it); None for any other provider.
    Read from the stack file's top level, not from `vaultfleet:` config (see parse)."""

    @field_validator("policies")
    @classmethod
    def _unique_policies(cls, names: list[str]) -> list[str]:
        unique("policy template", names)
        return names

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

    @model_validator(mode="after")
    def _existing_policies_are_not_the_fleets(self) -> ClusterStack:
        # The fleet's own policies are attached through templates (a cluster's) or never (another
        # cluster's, the pipeline's): naming one as existing would reach around both.
        managed = (f"{self.fleet.mount_prefix}-", "vaultfleet-")
        for i, role in enumerate(self.roles):
            for name in role.existing_policies:
                if name.startswith(managed):
                    raise ValueError(
                        f"roles[{i}].existingPolicies: '{name}' is a name vaultfleet manages ({managed[0]}*, "
                        "vaultfleet-*): attach a cluster's own policy through policies (templates)"
                    )
        return self

    @model_validator(mode="after")
    def _client_jwt_binds_named_accounts(self) -> ClusterStack:
        if self.cluster.auth_mode != "client-jwt":
            return self
        for i, role in enumerate(self.roles):
            for field, names in (("serviceAccounts", role.service_accounts), ("namespaces", role.namespaces)):
                if "*" in names:
                    raise ValueError(
                        f"roles[{i}].{field}: '*' with cluster.authMode client-jwt would bind system:auth-delegator "
                        "(TokenReview) to every workload it matches; name the ServiceAccounts and namespaces"
                    )
        return self

    @model_validator(mode="after")
    def _no_role_binds_the_reviewer(self) -> ClusterStack:
        # The reviewer's long-lived token sits in the cluster's state, which the applier and the
        # previewer can decrypt, and in a Secret: a role it matches would be a login for them. Refused
        # whatever the audience: an applier can recreate a role without one (render/applier.py).
        if self.cluster.auth_mode != "reviewer-token":
            return self
        namespace, account = self.cluster.reviewer_namespace, self.cluster.reviewer_service_account
        for i, role in enumerate(self.roles):
            if {"*", account} & set(role.service_accounts) and {"*", namespace} & set(role.namespaces):
                raise ValueError(
                    f"roles[{i}] ('{role.name}'): binds the reviewer's ServiceAccount {namespace}/{account} "
                    f"(serviceAccounts {role.service_accounts}, namespaces {role.namespaces}): its long-lived "
                    "token, kept in the stack's state and in the cluster, would log in as this role; bind the "
                    "workloads' own ServiceAccounts or namespaces"
                )
        return self

    @model_validator(mode="after")
    def _jwt_roles_name_an_audience(self) -> ClusterStack:
        if self.cluster.auth_mode != "jwt":
            return self
        for i, role in enumerate(self.roles):
            if role.audience is None:
                # A ServiceAccount token always carries `aud`; Vault's jwt roles refuse it unless bound.
                raise ValueError(f"roles[{i}].audience: required with cluster.authMode jwt (Vault's bound_audiences)")
        return self

    @property
    def auth_method(self) -> str:
        """The Vault auth method at the cluster's mount: `jwt` in jwt mode, else `kubernetes`."""
        return "jwt" if self.cluster.auth_mode == "jwt" else "kubernetes"

    @property
    def client_reviewers(self) -> list[tuple[str, str]] | None:
        """(namespace, ServiceAccount) of every role binding, in client-jwt mode: each gets
        system:auth-delegator, since Vault reviews its login with its own token. None in the
        other modes."""
        if self.cluster.auth_mode != "client-jwt":
            return None
        return sorted({(ns, sa) for r in self.roles for ns in r.namespaces for sa in r.service_accounts})

    @property
    def mount_path(self) -> str:
        return self.cluster.mount_path or f"{self.fleet.mount_prefix}-{self.name}"

    def policy_name(self, template: str) -> str:
        # The fleet's prefix: the previewer reads `${mount_prefix}-*` policies.
        return f"{self.fleet.mount_prefix}-{self.name}-{template}"

    @property
    def mount_max_ttl(self) -> int:
        """The longest token lifetime the stack file declares (a role's maxTtl, else its ttl): the
        shared stack tunes the cluster's mount to it, which caps the TTLs the applier policy cannot
        pin (a role's tokens without maxTtl live at most that long, renewals included). A cluster
        without roles issues no tokens: then a role's default ttl."""
        return max((r.max_ttl or r.ttl for r in self.roles), default=Role.model_fields["ttl"].default)

    def token_policies(self, role: Role) -> list[str]:
        """The Vault policies a role's tokens get, in the role's order (rendered templates, then
        the existing ones): every consumer of a role (its Vault role, the applier's pins, jwt
        mode's body, the consumers, verify) asks here."""
        return [self.policy_name(t) for t in role.policies] + list(role.existing_policies)


class SharedStack(Model):
    """The shared stack: Vault objects the whole fleet uses (KV v2 mount, each cluster's mount,
    policies and applier policy, the previewer policy,
    optionally the database secrets engine)."""

    kind: Literal["shared"]
    name: Label
    fleet: Fleet
    database: DatabaseSettings | None = None
    pipeline: PipelineSettings | None = None
    """The CI system's jwt auth mount and its previewer and applier identities."""


# Keys a stack file may set under `vaultfleet:` (camelCase, as written in the files).
_FLEET_KEYS = {"vaultAddress", "mountPrefix", "kvMount", "databaseMount", "allowInsecureHttp", "clusterAccess"}
_CLUSTER_KEYS = {"cluster", "roles", "policies", "databaseRoles"}
_SHARED_KEYS = {"database", "pipeline"}
_KNOWN_KEYS = _FLEET_KEYS | _CLUSTER_KEYS | _SHARED_KEYS | {"kind"}


def parse(
    values: dict[str, Any],
    stack: str,
    source: str,
    secret_keys: Collection[str] = (),
    secrets_provider: str | None = None,
) -> ClusterStack | SharedStack:
    """Validate the `vaultfleet:` values of one stack (keys without the namespace).

    `source` names the file the errors point at (the stack file). `secret_keys` are the keys the
    engine holds as secrets (`decode_secret_keys`); a password must be one of those, or be written
    as `secure:` ciphertext when the values come straight from a stack file. `secrets_provider` is
    the stack file's top-level `secretsprovider` when it is read from the file (the shared stack
    makes a cluster's Transit key from it). Raises ConfigError.
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
        if "pipeline" in values:
            document["pipeline"] = values["pipeline"]
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
        # Case-insensitive: the engine reads `HashiVault://` as hashivault:// too.
        if secrets_provider and secrets_provider.lower().startswith(HASHIVAULT):
            document["stateKey"] = _state_key(secrets_provider, stack, source)
        model = ClusterStack
    try:
        # The URL checks read the opt-in from the context: vaultAddress and cluster.apiHost are
        # refused over plain http:// to anything but loopback unless the stack allows it.
        return model.model_validate(document, context={ALLOW_INSECURE_HTTP: _allows_insecure_http(values)})
    except ValidationError as exc:
        raise ConfigError([(source, _field_name(e["loc"]), _message(e)) for e in exc.errors()]) from None


def _state_key(secrets_provider: str, stack: str, source: str) -> str:
    """The Transit key a cluster stack names: only its own, the one the shared stack makes and
    grants to this cluster's applier alone."""
    key = secrets_provider[len(HASHIVAULT) :]
    if not secrets_provider.startswith(HASHIVAULT) or key != state_key_name(stack):
        raise ConfigError(
            [
                (
                    source,
                    "secretsprovider",
                    f"'{secrets_provider}': a cluster stack's state key is {HASHIVAULT}{state_key_name(stack)} "
                    "(the shared stack makes it and grants it to this cluster's applier only)",
                )
            ]
        )
    return key


def _allows_insecure_http(values: dict[str, Any]) -> bool:
    """vaultfleet:allowInsecureHttp as the URL checks see it: True only when validly set to true
    (an invalid value is reported by the Fleet model, and allows nothing)."""
    try:
        return flag(values.get("allowInsecureHttp", False))
    except ValueError:
        return False


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
