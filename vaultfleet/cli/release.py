"""`vaultfleet release`: stop managing a cluster, nothing in Vault or the cluster changed."""

from __future__ import annotations

from typing import Annotated

import typer

from vaultfleet.cli.common import err, fail, load_project, out


def release(
    cluster: Annotated[str, typer.Argument(help="The cluster stack to let go of.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Take a cluster out of vaultfleet's hands: its objects leave the state of its stack and of the
    shared stack, its stack file is deleted; its mount, roles, policies, tokens and leases in Vault
    and its objects in the cluster stay exactly as they are (docs/adopt.md).

    Exit codes: 0 released; 1 the engine failed (run it again: each step is skipped once done);
    2 refused, nothing changed.
    """
    from vaultfleet.fleet.engine import CommandError
    from vaultfleet.release import ReleaseError
    from vaultfleet.release import release as run

    project = load_project()
    if not yes and not typer.confirm(
        f"release {cluster}: vaultfleet stops managing it, nothing in Vault or the cluster changes. Continue?"
    ):
        raise typer.Exit(code=2)
    try:
        done = run(project, cluster, echo=lambda m: err.print(f"[dim]release:[/] {m}", highlight=False))
    except ReleaseError as exc:
        fail(f"release refused, nothing changed: {exc}")
    except CommandError as exc:
        err.print(f"[red]release failed:[/] {exc}", highlight=False)
        raise typer.Exit(code=1) from None
    out.print(
        f"released {done.cluster}: {len(done.shared_urns)} resources out of the shared stack's state, "
        f"its stack {'removed' if done.stack_removed else 'was not in the backend'}, {done.stack_file} deleted; "
        "nothing in Vault or the cluster changed"
    )
