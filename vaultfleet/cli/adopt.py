"""`vaultfleet adopt`: take over a cluster already wired to Vault, without one failed login."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from vaultfleet.cli.common import err, fail, load_project, out


def adopt(
    cluster: Annotated[str, typer.Argument(help="Cluster (and stack) name, a DNS label.")],
    context: Annotated[str, typer.Option("--context", help="kubeconfig context of the cluster.")],
    mount: Annotated[str, typer.Option("--mount", help="The cluster's auth mount path in Vault (without auth/).")],
    reviewer: Annotated[
        str | None,
        typer.Option("--reviewer", help="NS/NAME of the reviewer ServiceAccount (default: the one found)."),
    ] = None,
    accept: Annotated[
        bool,
        typer.Option("--accept", help="Proceed although the first run writes the differences listed."),
    ] = False,
) -> None:
    """Read the cluster's auth mount (kubernetes or jwt), config, roles and reviewer, write the
    stack file that reproduces them and import every object into its stack and the shared stack:
    the first preview shows no changes; nothing but the differences listed is written, and no
    mount, role, policy, token or lease is recreated (docs/adopt.md).
    Needs an admin's VAULT_TOKEN.

    Exit codes: 0 adopted; 1 an engine run failed (`vaultfleet release` undoes the import);
    2 refused, nothing written; 3 differences to accept (listed; nothing written).
    """
    from vaultfleet.adopt.observe import AdoptError, AdoptionStopped
    from vaultfleet.adopt.run import adopt as run

    token = os.environ.get("VAULT_TOKEN")
    if not token:
        fail("adopt reads Vault as an admin: set VAULT_TOKEN")
    wanted = None
    if reviewer is not None:
        namespace, _, name = reviewer.partition("/")
        if not namespace or not name:
            fail(f"--reviewer {reviewer!r} must be NAMESPACE/NAME")
        wanted = (namespace, name)
    project = load_project()
    try:
        adoption = run(
            project,
            cluster,
            context,
            mount,
            token,
            wanted,
            accept,
            echo=lambda m: err.print(f"[dim]adopt:[/] {m}", highlight=False),
        )
    except AdoptError as exc:
        err.print(f"[red]adopt refused, nothing written:[/] {exc}", highlight=False)
        raise typer.Exit(code=2) from None
    except AdoptionStopped as exc:
        err.print(f"[red]adopt stopped:[/] {exc}", highlight=False)
        raise typer.Exit(code=1) from None
    for difference in adoption.differences:
        out.print(f"  {difference}", highlight=False)
    if not adoption.written:
        out.print(f"{adoption.stack_file} would be:\n{adoption.text}", highlight=False)
        err.print("differences listed above: run again with --accept to adopt with them; nothing written")
        raise typer.Exit(code=3)
    out.print(
        f"adopted {cluster}: wrote {adoption.stack_file}, imported {len(adoption.imported)} objects, "
        "the preview shows no changes"
    )
