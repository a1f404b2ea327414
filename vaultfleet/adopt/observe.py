"""What a cluster already has: its auth mount, config and roles in Vault, its reviewer in the
cluster. Read only: nothing is written anywhere."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import hvac


class AdoptError(ValueError):
    """Adoption cannot go ahead as asked; nothing was written."""


class AdoptionStopped(RuntimeError):
    """An engine run of the adoption failed after the stack file was written; nothing was deleted
    or replaced, and `vaultfleet release` takes what was imported out of the state."""


@dataclass(frozen=True)
class Mount:
    path: str
    type: str
    accessor: str
    description: str
    max_lease_ttl: int
    """Seconds; 0: the system default."""
    token_type: str = "default-service"
    """The mount's tuned token type (a role's `default` takes it)."""
    tune: dict[str, Any] = field(default_factory=dict)
    """The rest of the mount's settings as sys/auth lists them."""


@dataclass(frozen=True)
class Reviewer:
    namespace: str
    service_account: str
    token_secret: str
    binding: str
    """The ClusterRoleBinding to system:auth-delegator naming it."""


@dataclass
class Observed:
    mount: Mount
    config: dict[str, Any]
    roles: dict[str, dict[str, Any]]
    reviewer: Reviewer | None = None
    existing: list[str] = field(default_factory=list)
    """`<resource type> <import id>` of every object found, as program/adoption.py matches them."""


def observe_vault(vault: hvac.Client, mount_path: str) -> tuple[Mount, dict[str, Any], dict[str, dict[str, Any]]]:
    mounts = vault.sys.list_auth_methods()["data"]
    entry = mounts.get(f"{mount_path}/")
    if entry is None:
        known = ", ".join(sorted(m.rstrip("/") for m in mounts)) or "none"
        raise AdoptError(f"no auth mount auth/{mount_path} in Vault (auth mounts: {known})")
    mount = Mount(
        path=mount_path,
        type=entry["type"],
        accessor=entry["accessor"],
        description=entry.get("description") or "",
        max_lease_ttl=int((entry.get("config") or {}).get("max_lease_ttl") or 0),
        token_type=(entry.get("config") or {}).get("token_type") or "default-service",
        tune=dict(entry.get("config") or {}) | {k: entry[k] for k in ("options",) if entry.get(k)},
    )
    config = vault.read(f"auth/{mount_path}/config")
    roles: dict[str, dict[str, Any]] = {}
    listed = vault.list(f"auth/{mount_path}/role") or {}
    for name in (listed.get("data") or {}).get("keys", []):
        roles[name] = vault.read(f"auth/{mount_path}/role/{name}")["data"]
    return mount, (config or {}).get("data") or {}, roles


def observe_reviewer(api, wanted: tuple[str, str] | None) -> Reviewer | None:
    """The ServiceAccount Vault reviews tokens with: bound to system:auth-delegator, to nothing else,
    and holding a long-lived token Secret. `wanted` (namespace, name) picks one; without it, exactly
    one must exist. Its token goes into the cluster stack's state, which the applier and the
    previewer can decrypt: one bound to anything more than TokenReview is refused."""
    from kubernetes import client

    rbac, core = client.RbacAuthorizationV1Api(api), client.CoreV1Api(api)
    bindings = [*rbac.list_cluster_role_binding().items, *rbac.list_role_binding_for_all_namespaces().items]
    grants: dict[tuple[str, str], list[str]] = {}
    for binding in bindings:
        for subject in binding.subjects or []:
            if subject.kind == "ServiceAccount":
                grants.setdefault((subject.namespace, subject.name), []).append(binding.role_ref.name)
    candidates = []
    for binding in bindings:
        if binding.role_ref.name != "system:auth-delegator" or binding.metadata.namespace:
            continue
        for subject in binding.subjects or []:
            if subject.kind != "ServiceAccount":
                continue
            if wanted and (subject.namespace, subject.name) != wanted:
                continue
            more = sorted(set(grants[(subject.namespace, subject.name)]) - {"system:auth-delegator"})
            if more:
                if wanted:
                    raise AdoptError(
                        f"reviewer {subject.namespace}/{subject.name} is also bound to {', '.join(more)}: its token "
                        "would sit in state the applier and previewer can decrypt; give Vault a reviewer bound "
                        "to system:auth-delegator only"
                    )
                continue
            secrets = [
                s
                for s in core.list_namespaced_secret(subject.namespace).items
                if s.type == "kubernetes.io/service-account-token"
                and (s.metadata.annotations or {}).get("kubernetes.io/service-account.name") == subject.name
            ]
            if len(secrets) == 1:
                candidates.append(
                    Reviewer(subject.namespace, subject.name, secrets[0].metadata.name, binding.metadata.name)
                )
    if len(candidates) == 1:
        return candidates[0]
    shown = ", ".join(f"{c.namespace}/{c.service_account}" for c in candidates) or "none"
    if wanted:
        raise AdoptError(
            f"no reviewer {wanted[0]}/{wanted[1]} with one token Secret and a binding to system:auth-delegator"
        )
    if candidates:
        raise AdoptError(f"several ServiceAccounts could be the reviewer ({shown}): name one with --reviewer NS/NAME")
    return None
