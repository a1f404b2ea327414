"""Consumer configuration that matches the mount and roles vaultfleet creates, from the stack file.

No Vault and no cluster: everything comes from the validated stack config and the rendered
policies. Each consumer spells the auth mount and the KV path its own way, which is where
hand-written configurations go wrong; for the mount k8s-lab-a and the secret clusters/lab-a/config
of the KV v2 mount kv:

    Vault Agent injector  vault.hashicorp.com/auth-path   auth/k8s-lab-a   secret kv/data/clusters/lab-a/config
    Vault Agent           auto_auth method mount_path     auth/k8s-lab-a   template kv/data/clusters/lab-a/config
    external-secrets      auth.kubernetes.mountPath       k8s-lab-a        path: kv, version: v2, key clusters/lab-a/config
    VSO                   VaultAuth spec.mount            k8s-lab-a        mount: kv, type: kv-v2, path clusters/lab-a/config

(external-secrets and VSO put `auth/` in front themselves; the injector and the agent take the
path as written.) A role with an audience accepts only tokens minted for it, so each consumer is
told to request one: a projected ServiceAccount token for the injector,
serviceAccountRef.audiences for external-secrets, kubernetes.audiences for VSO.

A role granted `db-creds` reads dynamic PostgreSQL credentials (consumer_database resolves where
they connect); each consumer gets them its own way, as a PostgreSQL URL:

    Vault Agent injector  agent-inject-secret-db-<role> + a template    database/creds/<role>
    Vault Agent           a template                                    database/creds/<role>
    external-secrets      VaultDynamicSecret generator + ExternalSecret path: database/creds/<role>
    VSO                   VaultDynamicSecret                            mount: database, path: creds/<role>
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from vaultfleet.config import ClusterStack, Role
from vaultfleet.consumer_database import DatabaseCredentials
from vaultfleet.policy import POLICY_DIR, cluster_policy_rules, for_service_account

# external-secrets 1.3.2 (tools/fetch-crds.sh) serves external-secrets.io/v1 only: v1beta1 stopped
# being served in 0.17. vault-secrets-operator 0.10.0 serves secrets.hashicorp.com/v1beta1.
ESO_API_VERSION = "external-secrets.io/v1"
ESO_GENERATOR_API_VERSION = "generators.external-secrets.io/v1alpha1"  # the only version 1.3.2 serves
VSO_API_VERSION = "secrets.hashicorp.com/v1beta1"

INJECTOR = "vault.hashicorp.com/"
# Projected volume holding a token for the role's audience; the injector mounts it into its agent
# containers (agent-service-account-token-volume-name) and logs in with it.
TOKEN_VOLUME = "vault-token"
# Where the injector mounts that volume when no app container does (vault-k8s DefaultServiceAccountMount).
INJECTOR_TOKEN_DIR = "/var/run/secrets/vault.hashicorp.com/serviceaccount"
SECRETS_DIR = "/vault/secrets"  # where the injector's agent writes rendered secrets
# Key of the PostgreSQL URL in the Secrets external-secrets and VSO write (beside username, password).
DATABASE_URL_KEY = "url"


class ConsumerError(ValueError):
    """The request names something the stack does not have (role, namespace, ServiceAccount)."""


@dataclass(frozen=True)
class Binding:
    """One ServiceAccount a role lets in, with everything a consumer needs to log in as it."""

    cluster: str
    vault_address: str
    mount_path: str
    """The auth mount, without `auth/` (k8s-lab-a)."""
    kv_mount: str
    role: Role
    namespace: str
    service_account: str
    policies: tuple[str, ...]
    kv_secret: str | None
    """KV v2 data path of the example secret (kv/data/clusters/lab-a/config); None if the role reads no KV."""
    database_creds: tuple[str, ...]
    """Dynamic credential paths the role can read (<databaseMount>/creds/<name>)."""

    @property
    def auth_path(self) -> str:
        return f"auth/{self.mount_path}"

    @property
    def kv_key(self) -> str | None:
        """The secret's path inside the KV mount, as external-secrets and VSO want it."""
        if self.kv_secret is None:
            return None
        return self.kv_secret.removeprefix(f"{self.kv_mount}/data/")

    def describe(self) -> str:
        bound = (
            f"the role binds ServiceAccounts {', '.join(self.role.service_accounts)} "
            f"in namespaces {', '.join(self.role.namespaces)}"
        )
        audience = f"tokens for audience '{self.role.audience}'" if self.role.audience else "tokens of any audience"
        return (
            f"{self.cluster} role {self.role.name}: logs in at {self.auth_path} as ServiceAccount "
            f"{self.namespace}/{self.service_account} ({bound}; {audience}); policies {', '.join(self.policies)}"
        )


@dataclass(frozen=True)
class SecretTemplate:
    """One file Vault Agent renders: the injector's agent-inject-secret/-template pair, or an agent template."""

    name: str
    """File name (under /vault/secrets for the injector) and the annotations' suffix."""
    vault_path: str
    contents: str
    """Vault Agent (consul-template) text."""


def bindings(
    stack: ClusterStack,
    role: str | None = None,
    namespace: str | None = None,
    service_account: str | None = None,
    secret: str = "config",
    policy_dir: Path = POLICY_DIR,
) -> tuple[list[Binding], list[str]]:
    """The ServiceAccounts to write consumer config for, and notes on roles left out.

    A role named with `role` must yield a binding (else ConsumerError); without it every role
    does what it can, and a role that needs a namespace or ServiceAccount named is left out
    with a note.
    """
    if role is not None and role not in {r.name for r in stack.roles}:
        known = ", ".join(r.name for r in stack.roles) or "none"
        raise ConsumerError(f"no role '{role}' in {stack.name} (roles: {known})")
    chosen = [r for r in stack.roles if role in (None, r.name)]
    if not chosen:
        raise ConsumerError(f"{stack.name} declares no roles (vaultfleet:roles)")
    rules = cluster_policy_rules(stack, policy_dir)
    found, notes = [], []
    for r in chosen:
        try:
            accounts = [(ns, _pick(r, "ServiceAccount", r.service_accounts, service_account, "--service-account"))
                        for ns in _namespaces(r, namespace)]
        except ConsumerError as exc:
            if role is not None:
                raise
            notes.append(f"role {r.name} left out: {exc}")
            continue
        for ns, sa in accounts:
            found.append(_binding(stack, r, ns, sa, secret, rules))
    if not found:
        raise ConsumerError("; ".join(notes))
    return found, notes


def _namespaces(role: Role, wanted: str | None) -> list[str]:
    if wanted is not None:
        return [_pick(role, "namespace", role.namespaces, wanted, "--namespace")]
    named = [n for n in role.namespaces if n != "*"]
    if not named:
        raise ConsumerError(f"role '{role.name}' binds every namespace ('*'): say which with --namespace")
    return named


def _pick(role: Role, what: str, bound: list[str], wanted: str | None, option: str) -> str:
    if wanted is not None:
        if wanted not in bound and "*" not in bound:
            raise ConsumerError(f"role '{role.name}' does not bind {what} '{wanted}' (it binds: {', '.join(bound)})")
        return wanted
    named = [b for b in bound if b != "*"]
    if not named:
        raise ConsumerError(f"role '{role.name}' binds every {what} ('*'): say which with {option}")
    return named[0]


def _binding(stack: ClusterStack, role: Role, namespace: str, account: str, secret: str, rules) -> Binding:
    policies = tuple(stack.policy_name(t) for t in role.policies)
    # The paths as Vault applies them to this ServiceAccount (namespace-templated paths filled in).
    readable = [
        for_service_account(rule.path, namespace, account)
        for name in policies
        for rule in rules[name]
        if "read" in rule.capabilities
    ]
    return Binding(
        cluster=stack.name,
        vault_address=stack.fleet.vault_address,
        mount_path=stack.mount_path,
        kv_mount=stack.fleet.kv_mount,
        role=role,
        namespace=namespace,
        service_account=account,
        policies=policies,
        kv_secret=_kv_secret(readable, stack.fleet.kv_mount, secret),
        database_creds=tuple(
            p for p in readable if re.fullmatch(rf"{re.escape(stack.fleet.database_mount)}/creds/[^/*+<]+", p)
        ),
    )


def _kv_secret(paths: list[str], kv_mount: str, secret: str) -> str | None:
    """A secret the role can read: `secret` under the first KV v2 data subtree its policies grant."""
    for path in paths:
        if not path.startswith(f"{kv_mount}/data/") or "+" in path or "<" in path:
            continue
        if path.endswith("/*"):
            return path[:-1] + secret
        if "*" not in path:
            return path
    return None


# --- what each consumer gets ---------------------------------------------------------------------


def secret_templates(binding: Binding, databases: list[DatabaseCredentials] = ()) -> list[SecretTemplate]:
    """Vault Agent templates for what the role can read; the injector and a plain agent share them.

    `databases`: the binding's dynamic credentials as consumer_database.resolve found them.
    """
    templates = []
    if binding.kv_secret:
        # KEY=value lines, one per field of the KV v2 secret (Go templates range over sorted keys).
        templates.append(SecretTemplate(
            name=binding.kv_secret.rsplit("/", 1)[1],
            vault_path=binding.kv_secret,
            contents=(
                f'{{{{ with secret "{binding.kv_secret}" -}}}}\n'
                "{{ range $key, $value := .Data.data -}}\n"
                "{{ $key }}={{ $value }}\n"
                "{{ end -}}\n"
                "{{ end -}}\n"
            ),
        ))
    for database in databases:
        # Each render gets a fresh lease: the agent renews it while the pod runs.
        templates.append(SecretTemplate(
            name=database.name,
            vault_path=database.path,
            contents=(
                f'{{{{ with secret "{database.path}" -}}}}\n'
                f"{database.target.url('.Data.username', '.Data.password')}\n"
                "{{- end }}\n"
            ),
        ))
    return templates


def injector_patch(binding: Binding, templates: list[SecretTemplate]) -> dict:
    """A strategic-merge patch for a Deployment's pod template: annotations, ServiceAccount, token volume.

    Apply with `kubectl patch deployment NAME -n NAMESPACE --patch-file FILE`.
    """
    annotations = {
        f"{INJECTOR}agent-inject": "true",
        f"{INJECTOR}service": binding.vault_address,
        f"{INJECTOR}auth-path": binding.auth_path,  # the injector's agent wants the auth/ prefix
        f"{INJECTOR}role": binding.role.name,
    }
    pod_spec: dict = {"serviceAccountName": binding.service_account}
    if binding.role.audience:
        # The pod's default token is for the API server's audience; the role would refuse it.
        annotations[f"{INJECTOR}agent-service-account-token-volume-name"] = TOKEN_VOLUME
        pod_spec["volumes"] = [_token_volume(binding.role.audience)]
    for t in templates:
        annotations[f"{INJECTOR}agent-inject-secret-{t.name}"] = t.vault_path
        annotations[f"{INJECTOR}agent-inject-template-{t.name}"] = t.contents
    if binding.database_creds:
        # The sidecar renews the leases while the pod runs; revoking its token on shutdown revokes
        # them too (they are the token's children), so the users are dropped with the pod.
        annotations[f"{INJECTOR}agent-revoke-on-shutdown"] = "true"
    return {"spec": {"template": {"metadata": {"annotations": annotations}, "spec": pod_spec}}}


def _token_volume(audience: str) -> dict:
    return {
        "name": TOKEN_VOLUME,
        "projected": {"sources": [{"serviceAccountToken": {"audience": audience, "expirationSeconds": 3600, "path": "token"}}]},
    }


def eso_objects(binding: Binding, cluster_store: bool = False, databases: list[DatabaseCredentials] = ()) -> list[dict]:
    """An external-secrets SecretStore (or ClusterSecretStore), an ExternalSecret of the example secret,
    and per database role a VaultDynamicSecret generator with the ExternalSecret that runs it."""
    store = eso_store(binding, cluster_store)
    objects = [store]
    if binding.kv_key:
        secret = binding.kv_key.rsplit("/", 1)[1]
        objects.append(_object(ESO_API_VERSION, "ExternalSecret", secret, binding.namespace, {
            "refreshInterval": "1h",
            "secretStoreRef": {"kind": store["kind"], "name": store["metadata"]["name"]},
            "target": {"name": secret},
            # The key inside the mount, without data/: version v2 adds it.
            "dataFrom": [{"extract": {"key": binding.kv_key}}],
        }))
    for database in databases:
        objects += eso_database(binding, database)
    return objects


def eso_database(binding: Binding, database: DatabaseCredentials) -> list[dict]:
    """A VaultDynamicSecret generator for the role's credentials and an ExternalSecret running it.

    A SecretStore reads static secrets only; dynamic ones come from a generator, which logs in
    itself (same mount, role, ServiceAccount). external-secrets neither renews nor revokes the
    lease: each refresh issues new credentials and the old ones lapse with their lease, so the
    refresh comes at half the lease and workloads must pick up the changed Secret.
    """
    generator = _object(ESO_GENERATOR_API_VERSION, "VaultDynamicSecret", database.name, binding.namespace, {
        "path": database.path,  # the whole Vault path, mount included
        "method": "GET",
        "resultType": "Data",  # username, password
        "provider": {"server": binding.vault_address, "auth": {"kubernetes": _eso_kubernetes_auth(binding)}},
    })
    external = _object(ESO_API_VERSION, "ExternalSecret", database.name, binding.namespace, {
        "refreshInterval": f"{max(database.default_ttl // 2, 1)}s",
        "target": {
            "name": database.name,
            # Merge: the Secret keeps username and password and gains the URL.
            "template": {"engineVersion": "v2", "mergePolicy": "Merge",
                         "data": {DATABASE_URL_KEY: database.target.url(".username", ".password")}},
        },
        "dataFrom": [{"sourceRef": {"generatorRef": {
            "apiVersion": ESO_GENERATOR_API_VERSION, "kind": "VaultDynamicSecret", "name": database.name,
        }}}],
    })
    return [generator, external]


def _eso_kubernetes_auth(binding: Binding) -> dict:
    account: dict = {"name": binding.service_account}
    if binding.role.audience:
        account["audiences"] = [binding.role.audience]
    # No auth/ prefix: external-secrets logs in at auth/<mountPath>/login.
    return {"mountPath": binding.mount_path, "role": binding.role.name, "serviceAccountRef": account}


def eso_store(binding: Binding, cluster_store: bool = False) -> dict:
    """An external-secrets SecretStore (or ClusterSecretStore) logging in with the binding's role."""
    auth = _eso_kubernetes_auth(binding)
    provider = {
        "vault": {"server": binding.vault_address, "path": binding.kv_mount, "version": "v2", "auth": {"kubernetes": auth}}
    }
    if cluster_store:
        auth["serviceAccountRef"]["namespace"] = binding.namespace
        name = f"vaultfleet-{binding.role.name}-{binding.namespace}"
        # Only the role's namespace may use a store that logs in as one of its ServiceAccounts.
        store = _object(ESO_API_VERSION, "ClusterSecretStore", name, None,
                        {"provider": provider, "conditions": [{"namespaces": [binding.namespace]}]})
    else:
        name = f"vaultfleet-{binding.role.name}"
        store = _object(ESO_API_VERSION, "SecretStore", name, binding.namespace, {"provider": provider})
    return store


def vso_objects(binding: Binding, databases: list[DatabaseCredentials] = ()) -> list[dict]:
    """Vault Secrets Operator VaultConnection + VaultAuth, a VaultStaticSecret of the example secret,
    and a VaultDynamicSecret per database role."""
    objects = vso_auth(binding)
    auth = objects[-1]["metadata"]["name"]
    if binding.kv_key:
        secret = binding.kv_key.rsplit("/", 1)[1]
        objects.append(_object(VSO_API_VERSION, "VaultStaticSecret", secret, binding.namespace, {
            "vaultAuthRef": auth,
            "mount": binding.kv_mount,
            "type": "kv-v2",
            "path": binding.kv_key,
            "refreshAfter": "60s",
            "destination": {"name": secret, "create": True},
        }))
    for database in databases:
        # VSO renews the lease (at renewalPercent of it) and fetches new credentials when it can no
        # longer be renewed; the lease is revoked when the object is deleted.
        objects.append(_object(VSO_API_VERSION, "VaultDynamicSecret", database.name, binding.namespace, {
            "vaultAuthRef": auth,
            "mount": database.mount,
            "path": f"creds/{database.role}",  # relative to the mount
            "revoke": True,
            "destination": {
                "name": database.name,
                "create": True,
                # Beside the username and password VSO writes: the URL (VSO's templates read .Secrets).
                "transformation": {"templates": {DATABASE_URL_KEY: {
                    "text": database.target.url('get .Secrets "username"', 'get .Secrets "password"'),
                }}},
            },
        }))
    return objects


def vso_auth(binding: Binding) -> list[dict]:
    """Vault Secrets Operator VaultConnection + VaultAuth logging in with the binding's role."""
    connection = "vaultfleet"
    kubernetes: dict = {"role": binding.role.name, "serviceAccount": binding.service_account}
    if binding.role.audience:
        kubernetes["audiences"] = [binding.role.audience]
    return [
        _object(VSO_API_VERSION, "VaultConnection", connection, binding.namespace,
                {"address": binding.vault_address, "skipTLSVerify": False}),
        # No auth/ prefix: VSO logs in at auth/<mount>/login.
        _object(VSO_API_VERSION, "VaultAuth", f"vaultfleet-{binding.role.name}", binding.namespace, {
            "vaultConnectionRef": connection,
            "method": "kubernetes",
            "mount": binding.mount_path,
            "kubernetes": kubernetes,
        }),
    ]


def managed_objects(stack: ClusterStack, policy_dir: Path = POLICY_DIR) -> list[dict]:
    """The consumer objects a stack file asks `up` to create (roles[].consumers), each once.

    Only what logs in (stores, connections, auths): which secrets to sync is the workloads' business.
    """
    objects: dict[tuple, dict] = {}
    for role in stack.roles:
        if not role.consumers:
            continue
        found, _ = bindings(stack, role=role.name, policy_dir=policy_dir)
        for binding in found:
            made = ([eso_store(binding)] if "eso" in role.consumers else []) + (
                vso_auth(binding) if "vso" in role.consumers else []
            )
            for o in made:
                # Roles in one namespace share its VaultConnection (same name, same content).
                key = (o["apiVersion"], o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
                objects.setdefault(key, o)
    return list(objects.values())


def agent_config(binding: Binding, templates: list[SecretTemplate], token_path: str | None = None,
                 destination_dir: str = SECRETS_DIR) -> dict:
    """A Vault Agent configuration (HCL's JSON form): kubernetes auto-auth and the role's templates.

    It runs as a sidecar (renewing leases); `-exit-after-auth` makes it render once and exit, as an
    init container. It listens on nothing. `token_path` must hold a token for the role's audience.
    """
    token_path = token_path or (f"{INJECTOR_TOKEN_DIR}/token" if binding.role.audience else None)
    method_config = {"role": binding.role.name}
    if token_path:
        method_config["token_path"] = token_path
    return {
        "vault": {"address": binding.vault_address},
        "auto_auth": {
            # The agent wants the auth/ prefix (its default is auth/kubernetes).
            # exit_on_err: a refused login stops the agent (the pod shows it) instead of retrying unseen.
            "method": [{"type": "kubernetes", "mount_path": binding.auth_path, "exit_on_err": True, "config": method_config}],
        },
        # Likewise a template it cannot render (denied, missing) once its retries are spent.
        "template_config": {"exit_on_retry_failure": True},
        "template": [{"destination": f"{destination_dir}/{t.name}", "contents": t.contents} for t in templates],
    }


def _object(api_version: str, kind: str, name: str, namespace: str | None, spec: dict) -> dict:
    metadata: dict = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec}
