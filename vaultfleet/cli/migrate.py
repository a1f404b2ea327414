"""`vaultfleet migrate`: the shared layout's fleet to the per-cluster layout, state only."""

from __future__ import annotations

from typing import Annotated

import typer

from vaultfleet.cli.common import err, fail, load_project, out


def migrate(
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Move each cluster's access (auth mount, policy bodies, applier policy, state key) from the
    shared stack's state to its access stack vault.<cluster>, after Pulumi.yaml says
    `vaultfleet:clusterAccess: per-cluster`. State only: nothing in Vault changes, every mount keeps
    its accessor, tokens and leases stay valid (docs/fleet-layout.md). Then `vaultfleet preview --all`.

    Exit codes: 0 migrated; 1 the engine failed (run it again: a moved cluster is skipped);
    2 refused, nothing changed.
    """
    from vaultfleet.fleet.engine import CommandError
    from vaultfleet.migrate import MigrateError
    from vaultfleet.migrate import migrate as run

    project = load_project()
    if not yes and not typer.confirm(
        "migrate: move every cluster's access to its own stack vault.<cluster> (state only). Continue?"
    ):
        raise typer.Exit(code=2)
    try:
        done = run(project, echo=lambda m: err.print(f"[dim]migrate:[/] {m}", highlight=False))
    except MigrateError as exc:
        fail(f"migrate refused, nothing changed: {exc}")
    except CommandError as exc:
        err.print(f"[red]migrate failed:[/] {exc}", highlight=False)
        raise typer.Exit(code=1) from None
    moved = ", ".join(f"{c} ({n})" for c, n in sorted(done.moved.items())) or "none"
    out.print(
        f"migrated: {len(done.moved)} clusters moved to their access stacks: {moved}; "
        f"{len(done.skipped)} had nothing in the shared stack. Next: vaultfleet preview --all"
    )
