"""`vaultfleet migrate`: a fleet from the shared layout to the per-cluster one, state only.

In the shared layout the shared stack writes every cluster's access (its ClusterAccess: auth mount,
policy bodies, applier policy, Transit state key); in the per-cluster layout each cluster's access
stack vault.<cluster> does (docs/fleet-layout.md). Migrating moves each cluster's ClusterAccess
subtree from the shared stack's state to its access stack's with `pulumi state move`: the objects
keep their IDs and `protect`, and the access stack's program registers them under the same names,
so nothing in Vault is created, replaced or deleted: every mount keeps its accessor, and the tokens
and leases it issued stay valid.

Run it after setting `vaultfleet:clusterAccess: per-cluster` in Pulumi.yaml, before any `up`; then
`vaultfleet preview --all` shows only the per-cluster layout's own changes (each access stack's
preview grants policy, the shared stack's previewer policy and pipeline roles). A cluster already
moved is skipped, so a migration that stopped halfway can be run again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vaultfleet.fleet import engine
from vaultfleet.release import env_for, state_of, without_cluster
from vaultfleet.stackfile import Project, access_stack_name


class MigrateError(ValueError):
    """The migration cannot go ahead (layout not set, no single shared stack, an interrupted run,
    a cluster in both stacks); nothing was changed by the step that raised."""


@dataclass
class Migrated:
    moved: dict[str, int] = field(default_factory=dict)
    """Cluster -> how many resources moved to its access stack."""
    skipped: list[str] = field(default_factory=list)
    """Clusters with nothing of theirs in the shared stack's state (moved already, or never up)."""


def migrate(project: Project, echo: Callable[[str], None] = lambda _: None) -> Migrated:
    if not project.per_cluster:
        raise MigrateError(
            "Pulumi.yaml: set `vaultfleet:clusterAccess: per-cluster` first (every stack and vaultfleet read "
            "the layout there); then migrate, before any up"
        )
    shared = project.shared_stacks()
    if len(shared) != 1:
        raise MigrateError(f"the fleet needs exactly one shared stack file to migrate from, found {len(shared)}")
    from vaultfleet.validate import validate

    # Every file as the per-cluster layout reads it (no cluster's own Vault address or prefix): the
    # admin's token then goes to the fleet's Vault only.
    errors = [f for f in validate(project)[0] if f.severity == "error"]
    if errors:
        raise MigrateError(
            "the fleet does not validate in the per-cluster layout; fix it first:\n  "
            + "\n  ".join(f"{f.file}: {f.field}: {f.message}" for f in errors)
        )
    source = shared[0]
    env = engine.engine_env()
    source_env = env_for(source, env)
    state = state_of(
        engine.cli(project.root, source.name, source_env), "the shared stack", f"vaultfleet up {source.name}"
    )
    if state is None:
        raise MigrateError(f"stack {source.name} is not in the backend: nothing to migrate")
    done = Migrated()
    for stack_file in project.stacks():
        if stack_file.is_shared:
            continue
        cluster = stack_file.name
        _, urns = without_cluster(state, cluster)
        if not urns:
            done.skipped.append(cluster)
            continue
        access = access_stack_name(cluster)
        access_env = {**source_env, **env_for(stack_file, env)}
        target = state_of(engine.cli(project.root, access, access_env), f"stack {access}", f"vaultfleet up {access}")
        resources = (target or {}).get("deployment", {}).get("resources") or []
        if target is not None and not [r for r in resources if r.get("custom") and r.get("id")]:
            # An `up vault.X` run before the migration: its create of the mount failed (the path is
            # the shared stack's), leaving components only. Nothing to keep: the stack is made anew.
            engine.cli(project.root, access, access_env)(["stack", "rm", "--force", "--yes", "--preserve-config"])
            target = None
        held = {r["urn"].rsplit("::", 1)[-1] for r in resources if target is not None}
        both = sorted(held & {urn.rsplit("::", 1)[-1] for urn in urns})
        if both:
            raise MigrateError(
                f"{cluster}: both {source.name} and {access} hold {', '.join(both)} (a move cut short, or objects "
                f"made by `up {access}` before migrating): compare `pulumi stack export` of both; keep the copy "
                "with the object IDs Vault has, `pulumi state delete` the other"
            )
        if target is None:
            _create(project, access, stack_file.secrets_provider, access_env)
        engine.run_pulumi(
            ["state", "move", "--source", source.name, "--dest", access, "--yes", *urns], project.root, access_env
        )
        done.moved[cluster] = len(urns)
        echo(f"{cluster}: {len(urns)} resources moved from {source.name} to {access} (nothing changed in Vault)")
        state = state_of(engine.cli(project.root, source.name, source_env), "the shared stack", "")
    return done


def _create(project: Project, stack: str, secrets_provider: str | None, env: dict[str, str]) -> None:
    """`pulumi stack init` of an access stack, without the stack file it writes: the access stack
    reads its cluster's file (StackFile.config_file_args)."""
    written = project.stacks_dir / f"Pulumi.{stack}.yaml"
    try:
        engine.run_pulumi(
            ["stack", "init", stack, *(["--secrets-provider", secrets_provider] if secrets_provider else [])],
            project.root,
            env,
        )
    finally:
        written.unlink(missing_ok=True)
