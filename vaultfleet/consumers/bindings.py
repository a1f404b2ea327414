"""Which ServiceAccount a consumer logs in as, at which mount, and what it can read: one Binding per
ServiceAccount a role lets in, from the validated stack file and its rendered policies (no Vault,
no cluster). The per-kind modules (injector, agent, eso, vso) turn a Binding into configuration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from vaultfleet.consumers.database import DatabaseCredentials
from vaultfleet.render.policy import POLICY_DIR, PathRule, cluster_policy_rules, for_service_account
from vaultfleet.stackfile.schema import ClusterStack, Role


class ConsumerError(ValueError):
    """The request names something the stack does not have (role, namespace, ServiceAccount)."""


@dataclass(frozen=True)
class Binding:
    """One ServiceAccount a role lets in, with everything a consumer needs to log in as it."""

    cluster: str
    vault_address: str
    mount_path: str
    """The auth mount, without `auth/` (k8s-lab-a)."""
    auth_method: str
    """Vault's auth method at that mount: `kubernetes`, or `jwt` (cluster.authMode jwt), whose login
    takes the ServiceAccount token as `jwt` and which each consumer configures under another name."""
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
        # The kubernetes method is the one consumers default to; only jwt needs saying.
        method = " (Vault's jwt auth method)" if self.auth_method == "jwt" else ""
        return (
            f"{self.cluster} role {self.role.name}: logs in at {self.auth_path}{method} as ServiceAccount "
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
    rules: dict[str, list[PathRule]] | None = None,
) -> tuple[list[Binding], list[str]]:
    """The ServiceAccounts to write consumer config for, and notes on roles left out.

    `rules`: the stack's policy rules when the caller has rendered them (render.policy.policy_rules);
    otherwise they are rendered from `policy_dir`.

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
    rules = rules if rules is not None else cluster_policy_rules(stack, policy_dir)
    found, notes = [], []
    for r in chosen:
        try:
            accounts = [
                (ns, _pick(r, "ServiceAccount", r.service_accounts, service_account, "--service-account"))
                for ns in _namespaces(r, namespace)
            ]
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
    policies = tuple(stack.token_policies(role))
    # The paths as Vault applies them to this ServiceAccount (namespace-templated paths filled in).
    readable = [
        for_service_account(rule.path, namespace, account)
        for name in policies
        for rule in rules.get(name, [])  # an existing policy's body is Vault's: no path known here
        if "read" in rule.capabilities
    ]
    return Binding(
        cluster=stack.name,
        vault_address=stack.fleet.vault_address,
        mount_path=stack.mount_path,
        auth_method=stack.auth_method,
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


def secret_templates(binding: Binding, databases: list[DatabaseCredentials] = ()) -> list[SecretTemplate]:
    """Vault Agent templates for what the role can read; the injector and a plain agent share them.

    `databases`: the binding's dynamic credentials as consumers.database.resolve found them.
    """
    templates = []
    if binding.kv_secret:
        # KEY=value lines, one per field of the KV v2 secret (Go templates range over sorted keys).
        templates.append(
            SecretTemplate(
                name=binding.kv_secret.rsplit("/", 1)[1],
                vault_path=binding.kv_secret,
                contents=(
                    f'{{{{ with secret "{binding.kv_secret}" -}}}}\n'
                    "{{ range $key, $value := .Data.data -}}\n"
                    "{{ $key }}={{ $value }}\n"
                    "{{ end -}}\n"
                    "{{ end -}}\n"
                ),
            )
        )
    for database in databases:
        # Each render gets a fresh lease: the agent renews it while the pod runs.
        templates.append(
            SecretTemplate(
                name=database.name,
                vault_path=database.path,
                contents=(
                    f'{{{{ with secret "{database.path}" -}}}}\n'
                    f"{database.target.url('.Data.username', '.Data.password')}\n"
                    "{{- end }}\n"
                ),
            )
        )
    return templates


def k8s_object(api_version: str, kind: str, name: str, namespace: str | None, spec: dict) -> dict:
    metadata: dict = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec}
