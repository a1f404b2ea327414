"""`vaultfleet release CLUSTER`: stop managing a cluster without touching it.

Its objects leave the state of both stacks that hold them, and nothing in Vault or the cluster
changes: the mount (and so every token and lease it issued), its config, roles and policies, the
applier policy, the Transit state key, the reviewer in the cluster all stay as they are.
- The shared stack: the cluster's `ClusterAccess` (mount, policy bodies, applier policy, state key)
  and everything under it leave its state, in one `stack import` of the edited deployment; other
  resources' dependencies on them are dropped. Its next `up` then only updates fleet-wide objects
  that listed the cluster (the pipeline's applier role, the previewer policy).
- Per-cluster layout (docs/fleet-layout.md): the same objects are the whole state of the cluster's
  access stack vault.<cluster>, which is removed from the backend (`stack rm --force`).
- The cluster's stack is removed from the backend (`stack rm --force`: state only, no destroy).
- The stack file is deleted, so no later run makes the cluster again: commit its deletion.

Each step is skipped when already done, so a release that stopped halfway can be run again.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vaultfleet.fleet import engine
from vaultfleet.fleet.recovery import pending_operations, plain_export
from vaultfleet.stackfile import Project

# The type and name under which the shared stack's program registers one cluster's objects
# (components/shared.py: SharedVault("fleet") -> ClusterAccess("fleet-cluster-<cluster>")).
CLUSTER_ACCESS_TYPE = "vaultfleet:vault:ClusterAccess"
SHARED_COMPONENT = "fleet"


class ReleaseError(ValueError):
    """The release cannot go ahead (unknown or shared stack, an interrupted run); nothing was changed
    by the step that raised."""


@dataclass
class Released:
    cluster: str
    shared_urns: list[str] = field(default_factory=list)
    """What left the shared stack's state."""
    stack_removed: bool = False
    stack_file: str | None = None
    """The stack file deleted (project-relative)."""


def release(project: Project, name: str, echo: Callable[[str], None] = lambda _: None) -> Released:
    if name not in project.stack_names():
        raise ReleaseError(f"no stack file for {name} (known: {', '.join(project.stack_names())})")
    stack_file = project.stack(name)
    if stack_file.is_shared:
        raise ReleaseError(f"{name} is the shared stack: release releases one cluster")
    env = engine.engine_env()
    shared_clis = [engine.cli(project.root, s.name, env_for(s, env)) for s in project.shared_stacks()]
    cluster_cli = engine.cli(project.root, name, env_for(stack_file, env))
    access = project.access_stack_names([name])
    access_clis = [engine.cli(project.root, a, env_for(stack_file, env)) for a in access]
    # Read every state first: a refusal changes nothing anywhere.
    shared_states = [state_of(run_cli, "the shared stack", "vaultfleet up <shared stack>") for run_cli in shared_clis]
    access_states = [
        state_of(run_cli, f"stack {a}", f"vaultfleet up {a}") for a, run_cli in zip(access, access_clis, strict=True)
    ]
    cluster_state = state_of(cluster_cli, f"stack {name}", f"vaultfleet up {name}")
    done = Released(name)
    for run_cli, state in zip(shared_clis, shared_states, strict=True):
        if state is not None:
            done.shared_urns += _release_from_shared(run_cli, state, name, echo)
    for a, run_cli, state in zip(access, access_clis, access_states, strict=True):
        if state is None:
            echo(f"stack {a}: not in the backend")
            continue
        # Its whole state is the cluster's access: the stack goes, its objects stay in Vault.
        resources = state.get("deployment", {}).get("resources") or []
        done.shared_urns += [r["urn"] for r in resources if not r.get("type", "").startswith("pulumi:")]
        run_cli(["stack", "rm", "--force", "--yes", "--preserve-config"])
        echo(f"stack {a}: removed from the backend, its {_count(state)} resources left as they are")
    if cluster_state is None:
        echo(f"stack {name}: not in the backend")
    else:
        # --force: remove the stack although it holds resources; only its state goes, nothing is
        # destroyed. --preserve-config: the stack file is deleted below, once everything else is done.
        cluster_cli(["stack", "rm", "--force", "--yes", "--preserve-config"])
        done.stack_removed = True
        echo(f"stack {name}: removed from the backend, its {_count(cluster_state)} resources left as they are")
    stack_file.path.unlink()
    done.stack_file = str(stack_file.path.relative_to(project.root))
    echo(f"deleted {done.stack_file}: commit its deletion")
    return done


def env_for(stack_file, env: dict[str, str]) -> dict[str, str]:
    """The environment the stack's state needs (a Transit secrets provider reads Vault, with the
    caller's token): the Vault address of the file as validated, else the fleet's (Pulumi.yaml)."""
    settings = stack_file.valid_settings()
    address = settings.fleet.vault_address if settings else stack_file.project.defaults.get("vaultAddress")
    return engine.state_key_env(env, stack_file.secrets_provider, address)


def state_of(run_cli, which: str, settle: str) -> dict[str, Any] | None:
    """The stack's exported state (secrets as ciphertext); None for a stack not in the backend."""
    try:
        deployment = plain_export(run_cli)
    except engine.CommandError as exc:
        if "no stack named" in str(exc):
            return None
        raise
    if pending_operations(deployment):
        raise ReleaseError(
            f"{which} has operations an interrupted run left: run `{settle}` first (it settles them), then release"
        )
    return deployment


def _release_from_shared(run_cli, deployment: dict[str, Any], cluster: str, echo: Callable[[str], None]) -> list[str]:
    edited, removed = without_cluster(deployment, cluster)
    if not removed:
        echo(f"shared stack: nothing of {cluster} in its state")
        return []
    with tempfile.NamedTemporaryFile("w", suffix=".json") as spec:
        json.dump(edited, spec)
        spec.flush()
        run_cli(["stack", "import", "--file", spec.name])
    echo(f"shared stack: {len(removed)} resources of {cluster} left its state (nothing deleted in Vault)")
    return removed


def without_cluster(deployment: dict[str, Any], cluster: str) -> tuple[dict[str, Any], list[str]]:
    """The exported deployment without the cluster's ClusterAccess and its descendants, and their
    URNs. Dependencies of the resources kept on removed ones are dropped with them."""
    resources = deployment.get("deployment", {}).get("resources") or []
    name = f"{SHARED_COMPONENT}-cluster-{cluster}"
    removed = {r["urn"] for r in resources if r.get("type") == CLUSTER_ACCESS_TYPE and r["urn"].endswith(f"::{name}")}
    grew = True
    while grew:  # descendants: children name their parent
        more = {r["urn"] for r in resources if r.get("parent") in removed} - removed
        removed |= more
        grew = bool(more)
    kept = []
    for r in resources:
        if r["urn"] in removed:
            continue
        r = dict(r)
        if r.get("dependencies"):
            r["dependencies"] = [d for d in r["dependencies"] if d not in removed]
        if r.get("propertyDependencies"):
            r["propertyDependencies"] = {
                k: [d for d in v if d not in removed] for k, v in r["propertyDependencies"].items()
            }
        if r.get("deletedWith") in removed:
            del r["deletedWith"]
        kept.append(r)
    edited = {**deployment, "deployment": {**deployment["deployment"], "resources": kept}} if removed else deployment
    return edited, [r["urn"] for r in resources if r["urn"] in removed]


def _count(deployment: dict[str, Any]) -> int:
    return len(deployment.get("deployment", {}).get("resources") or [])
