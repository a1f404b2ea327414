"""Dangerous steps: the ones that take from Vault what no later run gives back (docs/dangerous-steps.md).

A step is dangerous when it deletes or replaces (the old object removed) one of these, or remounts a
mount (an update of its path: Vault moves it, and revokes what it issued):
- an auth mount (a cluster's, the pipeline's jwt mount): every token and lease it issued is revoked;
- the KV mount (every secret in it is lost; a remount moves them, and every reader's path breaks) or
  the database secrets engine (every lease it issued is revoked, its database users dropped);
- a cluster's Transit state key (that cluster stack's state secrets are encrypted under it);
- a database connection (its roles' leases can no longer be revoked: Vault's revocation needs the
  connection, so their database users stay, and the engine itself can no longer be unmounted;
  checked on OpenBao 2.4). A role's delete is not: its leases still revoke;
- a database role moved to another connection (an update of its dbName): Vault revokes a lease
  through the role's connection as it is at revocation, so the users the old connection made stay.
An object kept in Vault when it leaves the stack (retainOnDelete: an adopted mount, a state key)
loses nothing, but leaves vaultfleet's hands: still dangerous (and protected), the reason says so.

The program registers these objects with Pulumi's `protect`, so a plain `pulumi up` stops before a
delete or replace of one (its preview fails, nothing written). `vaultfleet preview` marks the steps;
`vaultfleet up` previews a stack that holds one first and refuses the stack's dangerous steps unless
the run names it (`--allow-dangerous STACK`); a run that names it (or a `destroy`) lifts `protect`
from the stack's guarded objects in the state for that one operation (fleet/runner.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

AUTH_MOUNTS = frozenset({"vault:index/authBackend:AuthBackend", "vault:jwt/authBackend:AuthBackend"})
SECRETS_MOUNT = "vault:index/mount:Mount"
STATE_KEY = "vault:transit/secretBackendKey:SecretBackendKey"
DATABASE_CONNECTION = "vault:database/secretBackendConnection:SecretBackendConnection"
DATABASE_ROLE = "vault:database/secretBackendRole:SecretBackendRole"
GUARDED_TYPES = AUTH_MOUNTS | {SECRETS_MOUNT, STATE_KEY, DATABASE_CONNECTION, DATABASE_ROLE}
MOUNTS = AUTH_MOUNTS | {SECRETS_MOUNT}

# What the engine says when `protect` stopped a step (3.184: "unable to replace resource ... as it
# is currently marked for protection", "... cannot be deleted\nbecause it is protected"), and the
# failure line that follows any error. Matched only on error diagnostics of a dangerous step's URN.
_PROTECTED = ("marked for protection", "because it is protected")
_RUN_FAILED = ("preview failed", "update failed")


@dataclass(frozen=True)
class DangerousStep:
    urn: str
    op: str
    """delete, replace or update (a remount)."""
    type: str
    name: str
    reason: str
    """What the step does and what it costs, e.g. "deletes auth mount k8s-lab-a: every token and
    lease it issued is revoked"."""

    def describe(self) -> str:
        return f"{self.op} {self.type} {self.name}: {self.reason}"


def reason(
    op: str,
    type_: str,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    diffs: Iterable[str],
    leaving_mounts: frozenset[str] = frozenset(),
) -> str | None:
    """Why a step is dangerous, or None. `old` and `new` are the engine's states of the step (its
    event's metadata: `inputs`, `retainOnDelete`), `diffs` the inputs it changes, `leaving_mounts`
    the paths of the mounts the same plan deletes or replaces (`leaving_mounts`)."""
    if type_ not in GUARDED_TYPES:
        return None
    before = dict((old or {}).get("inputs") or {})
    after = dict((new or {}).get("inputs") or {})
    if type_ == DATABASE_ROLE:
        # Vault revokes a lease through its role's connection as it is then (secret_creds.go: the
        # role's DBName while the role exists): moved, the users the old one made stay.
        if op != "update" or "dbName" not in set(diffs):
            return None
        return (
            f"moves database role {before.get('backend')}/roles/{before.get('name')} from connection "
            f"{before.get('dbName')} to {after.get('dbName')}: the leases it issued before revoke through the "
            f"new one, and the users the old one made stay in their database"
        )
    if type_ == DATABASE_CONNECTION and op == "delete" and before.get("backend") in leaving_mounts:
        # Vault removes it with its engine, after revoking the engine's leases through it (deleted_with).
        return f"goes with database secrets engine {before.get('backend')}, which is removed"
    what, loss = _what_and_loss(type_, before or after)
    if op == "update":
        if type_ not in MOUNTS or "path" not in set(diffs):
            return None  # a description, a tune, a key's settings: nothing revoked
        return f"remounts {what} at {after.get('path')}: {_remount_loss(type_, before or after)}"
    if op not in ("delete", "replace"):
        return None
    moved = after.get("path") if type_ in MOUNTS and after.get("path") != before.get("path") else None
    if (old or {}).get("retainOnDelete"):
        kept = "stays in Vault (retainOnDelete): nothing is revoked, but no stack manages it any more"
        if op == "delete":
            return f"removes {what} from the stack: it {kept}"
        return f"replaces {what}{f' with {moved}' if moved else ''}: the old one {kept}"
    if op == "delete":
        return f"deletes {what}: {loss}"
    return f"replaces {what}{f' with {moved}' if moved else ''} (the old one is removed): {loss}"


def leaving_mounts(steps: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The paths of the database secrets engines a plan deletes or replaces, from its steps'
    metadata (op, type, old). Only those: an auth mount may be named like the engine."""
    found = set()
    for m in steps:
        inputs = (m.get("old") or {}).get("inputs") or {}
        if m.get("type") == SECRETS_MOUNT and inputs.get("type") == "database" and m.get("op") in ("delete", "replace"):
            found.add(str(inputs.get("path")))
    return frozenset(found)


def _what_and_loss(type_: str, inputs: Mapping[str, Any]) -> tuple[str, str]:
    path = inputs.get("path")
    if type_ in AUTH_MOUNTS:
        return f"auth mount {path}", "every token and lease it issued is revoked"
    if type_ == DATABASE_CONNECTION:
        return (
            f"database connection {inputs.get('backend')}/config/{inputs.get('name')}",
            "the leases its roles issued can no longer be revoked (Vault revokes through it): their "
            "database users stay, and the engine cannot be unmounted until they are force-revoked",
        )
    if type_ == STATE_KEY:
        return (
            f"Transit state key {inputs.get('backend')}/keys/{inputs.get('name')}",
            "the state secrets of the cluster stack it belongs to are encrypted under it",
        )
    kind = inputs.get("type")
    if kind == "kv":
        return f"KV mount {path}", "every secret in it is lost"
    if kind == "database":
        return (
            f"database secrets engine {path}",
            "every lease it issued is revoked (their database users dropped), its connections and roles go",
        )
    return f"secrets engine {path} ({kind})", "everything in it is lost"


def _remount_loss(type_: str, inputs: Mapping[str, Any]) -> str:
    # Vault revokes the leases (tokens included) of a mount it moves (checked for auth mounts on
    # OpenBao 2.4 and Vault 1.14: a token issued before fails lookup-self after); data moves with it.
    if type_ in AUTH_MOUNTS:
        return "every token and lease it issued is revoked"
    if inputs.get("type") == "kv":
        return "its secrets move with it, and every reader and policy of the old path fails"
    return "every lease it issued is revoked"


def guarded(deployment: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The resources of an exported state (`pulumi stack export`) a step could endanger; a stack
    without any needs no preview before its `up`."""
    resources = ((deployment or {}).get("deployment") or {}).get("resources") or []
    return [r for r in resources if r.get("type") in GUARDED_TYPES]


def protected(deployment: Mapping[str, Any] | None) -> list[str]:
    """URNs of the guarded resources the state holds with `protect` set."""
    return [r["urn"] for r in guarded(deployment) if r.get("protect")]


def stopped_only_by_protection(dangerous: list[DangerousStep], errors: list[tuple[str | None, str]]) -> bool:
    """True when a failed run's errors are only the engine refusing dangerous steps on protected
    objects (and the run's closing "preview failed"): the plan itself is complete and sound."""
    urns = {d.urn for d in dangerous}
    if not urns or not errors:
        return False
    for urn, message in errors:
        if urn is None and message.strip() in _RUN_FAILED:
            continue
        if urn in urns and any(p in message for p in _PROTECTED):
            continue
        return False
    return True


class Refused(Exception):
    """`up` found dangerous steps in a stack the run did not name with --allow-dangerous; nothing
    was written."""

    def __init__(self, stack: str, steps: list[DangerousStep]):
        self.stack, self.steps = stack, steps
        lines = "\n".join(f"  {s.describe()}" for s in steps)
        message = (
            f"refused: stack {stack} would take {len(steps)} dangerous step{'s' if len(steps) > 1 else ''}, "
            f"nothing was written:\n{lines}\n"
            f"To apply them: `vaultfleet up {stack} --allow-dangerous {stack}`."
        )
        if any(s.op == "delete" and s.type in AUTH_MOUNTS for s in steps):
            message += (
                " A cluster whose stack file was deleted leaves the fleet that way (offboarding); to stop "
                "managing it without revoking anything, restore its stack file and run "
                "`vaultfleet release CLUSTER` instead."
            )
        super().__init__(message)
