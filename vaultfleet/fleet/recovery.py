"""Heal a stack after an interrupted run (engine killed, machine lost) before running it again.

An engine killed in the middle of `up` leaves up to three things behind:

- (file:// backends) a truncated metadata sidecar: the checkpoint itself is replaced atomically
  (temp file + rename), but gocloud's fileblob rewrites `<stack>.json.attrs` in place, and a kill
  in between leaves it empty; every later read of the stack then fails with "failed to load
  checkpoint: EOF". A missing sidecar is fine to fileblob, so a broken one is removed.

- a stale lock (self-managed backends): the next run refuses with "the stack is currently
  locked". A lock is removed only when it was taken on this host by a process that no longer
  exists; a lock held elsewhere or by a live process is reported, never broken.
- pending operations in the checkpoint. A pending *create* means the engine asked a provider to
  create an object and never heard back: the object may exist (in Vault or the cluster) without
  being in any state, so a plain rerun would try to create it again and fail ("path is already in
  use"), or leave it orphaned. vaultfleet knows the provider ID of every object it creates (mount
  path, policy name, role path, namespace/name), so it clears the pending creates
  (`pulumi refresh --clear-pending-creates`, which also settles pending updates and deletes by
  reading the objects back) and then `pulumi import`s each object that exists under the exact URN,
  parent and provider the program registers: the next `up` finds it in state and only updates what
  differs. An object the interrupted create never made answers "does not exist" and is created by
  the `up` as usual. (`refresh --import-pending-creates` looks like the tool for this, but in Pulumi
  3.184 it drops the pending create without adopting the object.)
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaultfleet.fleet import engine

# Type token -> provider ID, from the inputs recorded with the pending operation. These are the IDs
# the providers give the objects (terraform-provider-vault's and pulumi-kubernetes'), so an import
# reads exactly the object the interrupted create was making.
_VAULT_IDS: dict[str, Callable[[dict[str, Any]], str]] = {
    "vault:index/authBackend:AuthBackend": lambda i: i["path"],
    "vault:index/mount:Mount": lambda i: i["path"],
    "vault:index/policy:Policy": lambda i: i["name"],
    "vault:kubernetes/authBackendConfig:AuthBackendConfig": lambda i: f"auth/{i['backend']}/config",
    "vault:kubernetes/authBackendRole:AuthBackendRole": lambda i: f"auth/{i['backend']}/role/{i['roleName']}",
    "vault:database/secretBackendConnection:SecretBackendConnection": lambda i: f"{i['backend']}/config/{i['name']}",
    "vault:database/secretBackendRole:SecretBackendRole": lambda i: f"{i['backend']}/roles/{i['name']}",
}


def provider_id(resource_type: str, inputs: dict[str, Any]) -> str | None:
    """The ID the provider would give the object a pending create was making; None if unknown."""
    try:
        if resource_type in _VAULT_IDS:
            return _VAULT_IDS[resource_type](inputs)
        if resource_type.startswith("kubernetes:"):
            meta = inputs["metadata"]
            return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
    except (KeyError, TypeError):
        return None  # an input was unknown (computed) when the engine recorded the operation
    return None


@dataclass(frozen=True)
class PendingOperation:
    urn: str
    type: str
    """creating, updating, deleting, reading or importing."""
    resource_type: str
    provider_id: str | None
    parent: str = ""
    """URN of the parent resource (the component that registered it)."""
    provider: str = ""
    """URN of the explicit provider it was created with."""

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]

    def import_spec(self) -> dict[str, Any]:
        """`pulumi import --file` content that recreates this resource's exact URN."""
        return {
            "nameTable": {"parent": self.parent, "provider": self.provider},
            "resources": [
                {
                    "type": self.resource_type,
                    "name": self.name,
                    "id": self.provider_id,
                    "parent": "parent",
                    "provider": "provider",
                }
            ],
        }


def pending_operations(deployment: dict[str, Any]) -> list[PendingOperation]:
    """The pending operations of an exported (untyped v3) deployment."""
    ops = []
    for op in (deployment.get("deployment") or {}).get("pending_operations") or []:
        res = op.get("resource") or {}
        kind = res.get("type", "")
        ops.append(
            PendingOperation(
                urn=res.get("urn", ""),
                type=op.get("type", ""),
                resource_type=kind,
                provider_id=provider_id(kind, res.get("inputs") or {}),
                parent=res.get("parent", ""),
                # A provider reference is "<provider URN>::<provider ID>".
                provider=(res.get("provider") or "").rsplit("::", 1)[0],
            )
        )
    return ops


@dataclass(frozen=True)
class StackLock:
    host: str
    pid: int
    path: str


# "  file:///.../.pulumi/locks/organization/vaultfleet/lab-a/<uuid>.json?no_tmp_dir=true: created by
#    root@host (pid 123) at ..."
_LOCK_LINE = re.compile(r"^\s*(?P<path>\S+?\.json)(\?\S*)?: created by \S*@(?P<host>\S+) \(pid (?P<pid>\d+)\)", re.M)


def locks_in_error(message: str) -> list[StackLock]:
    """The locks a 'stack is currently locked' error names (empty if it is another error)."""
    if "currently locked" not in message:
        return []
    return [StackLock(m["host"], int(m["pid"]), m["path"]) for m in _LOCK_LINE.finditer(message)]


def is_stale(lock: StackLock, hostname: str | None = None) -> bool:
    """Taken on this host by a process that is gone: nobody can be running the stack under it."""
    if lock.host != (hostname or socket.gethostname()):
        return False
    try:
        os.kill(lock.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, under another user
    # The PID is alive: stale only if it is no longer a pulumi engine (the kernel reused the PID).
    try:
        exe = os.readlink(f"/proc/{lock.pid}/exe")
    except OSError:
        return False
    return not Path(exe).name.startswith("pulumi")


def repair_file_backend(backend_url: str, project: str, stack: str) -> list[Path]:
    """Remove the stack's empty or undecodable `.attrs` sidecars (checkpoint, backup, lock) in a
    file:// backend; returns what was removed. Other backends keep no such sidecar."""
    if not backend_url.startswith("file://"):
        return []
    root = Path(backend_url.removeprefix("file://").split("?", 1)[0]).expanduser() / ".pulumi"
    candidates = [
        *root.glob(f"stacks/{project}/{stack}.json*.attrs"),
        *root.glob(f"stacks/{stack}.json*.attrs"),  # the backend's legacy, non-project layout
        *root.glob(f"locks/*/{project}/{stack}/*.attrs"),
    ]
    removed = []
    for sidecar in candidates:
        try:
            json.loads(sidecar.read_text())
        except ValueError:  # empty (cut short by the kill) or partial JSON
            sidecar.unlink(missing_ok=True)
            removed.append(sidecar)
    return removed


@dataclass
class Recovery:
    """What was healed, for the fleet summary; empty when the stack was clean."""

    repaired_files: list[Path] = field(default_factory=list)
    stale_locks: list[StackLock] = field(default_factory=list)
    adopted: list[PendingOperation] = field(default_factory=list)
    """Interrupted creates whose object existed: imported into state."""
    dropped: list[PendingOperation] = field(default_factory=list)
    """Interrupted creates whose object did not exist: cleared, the up creates them."""
    settled: list[PendingOperation] = field(default_factory=list)
    """Other pending operations, settled by the refresh."""

    def __bool__(self) -> bool:
        return bool(self.repaired_files or self.stale_locks or self.adopted or self.dropped or self.settled)

    def describe(self) -> str:
        parts = []
        if self.repaired_files:
            parts.append("removed truncated state metadata " + ", ".join(p.name for p in self.repaired_files))
        if self.stale_locks:
            parts.append("removed stale lock of " + ", ".join(f"pid {lk.pid}" for lk in self.stale_locks))
        if self.adopted:
            parts.append(
                "adopted objects an interrupted create had made: "
                + ", ".join(str(op.provider_id) for op in self.adopted)
            )
        if self.dropped:
            parts.append(
                "cleared interrupted creates that made nothing: "
                + ", ".join(str(op.provider_id) for op in self.dropped)
            )
        if self.settled:
            parts.append("refreshed " + ", ".join(f"{op.type} {op.urn.rsplit('::', 1)[-1]}" for op in self.settled))
        return "recovered from an interrupted run: " + "; ".join(parts)


class UnresolvedPendingCreate(RuntimeError):
    pass


class StackLocked(RuntimeError):
    pass


def clear_stale_locks(run_cli: Callable[[list[str]], Any], message: str, recovery: Recovery) -> bool:
    """Given the text of a failed run, remove its locks if every one is stale; True if removed.

    Raises StackLocked (naming holder and PID) when a lock may still be in use.
    """
    locks = locks_in_error(message)
    if not locks:
        return False
    live = [lk for lk in locks if not is_stale(lk)]
    if live:
        holders = ", ".join(f"pid {lk.pid} on {lk.host}" for lk in live)
        raise StackLocked(
            f"the stack is locked by a run that may still be going ({holders}); "
            "wait for it, or run `pulumi cancel` once you are sure it is gone"
        )
    run_cli(["cancel", "--yes"])
    recovery.stale_locks += locks
    return True


def settle_pending(
    export: Callable[[], dict[str, Any]], run_cli: Callable[[list[str]], Any], recovery: Recovery
) -> None:
    """Adopt what interrupted creates made, drop what they did not, refresh away other pending operations."""
    ops = pending_operations(export())
    if not ops:
        return
    creates = [op for op in ops if op.type == "creating"]
    unknown = [op for op in creates if op.provider_id is None or not op.parent or not op.provider]
    if unknown:
        raise UnresolvedPendingCreate(
            "interrupted creates vaultfleet cannot identify: "
            + ", ".join(op.urn for op in unknown)
            + "; check whether they exist, then `pulumi refresh` and answer its prompts"
        )
    run_cli(["refresh", "--yes", "--non-interactive", "--skip-preview", "--clear-pending-creates", "--color", "never"])
    left = pending_operations(export())
    if left:
        raise UnresolvedPendingCreate("pending operations left after refresh: " + ", ".join(op.urn for op in left))
    for op in creates:
        (recovery.adopted if _adopt(run_cli, op) else recovery.dropped).append(op)
    recovery.settled += [op for op in ops if op.type != "creating"]


def _adopt(run_cli: Callable[[list[str]], Any], op: PendingOperation) -> bool:
    """Import the object an interrupted create was making; False when it does not exist."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as spec:
        json.dump(op.import_spec(), spec)
        spec.flush()
        try:
            run_cli(
                [
                    "import",
                    "--file",
                    spec.name,
                    "--yes",
                    "--non-interactive",
                    "--skip-preview",
                    "--protect=false",
                    "--generate-code=false",
                    "--color",
                    "never",
                ]
            )
        except engine.CommandError as exc:
            if "does not exist" in str(exc) or "not found" in str(exc).lower():
                return False
            raise
    return True


def plain_export(run_cli: Callable[[list[str]], Any]) -> dict[str, Any]:
    """`pulumi stack export` without --show-secrets (secrets stay ciphertext)."""
    return json.loads(run_cli(["stack", "export"]).stdout or "{}")
