"""`vaultfleet access`: who can do what, from the stack files."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from vaultfleet.cli.common import format_option, load_stacks, out

Format = format_option("table", "json", "markdown")


def access(
    stacks: Annotated[list[str] | None, typer.Argument(help="Stacks (default: all).")] = None,
    output: Format = "table",
) -> None:
    """Who can do what: cluster, namespace, ServiceAccount -> role -> policy -> path -> capabilities."""
    from vaultfleet.access import grants

    project, loaded = load_stacks(stacks)
    rows = grants(loaded, project.policy_dir)
    if output == "json":
        print(json.dumps([g.to_json() for g in rows], indent=2))
        return
    headers = ["cluster", "namespace", "serviceaccount", "role", "policy", "path", "capabilities"]
    values = [
        [g.cluster, g.namespace, g.service_account, g.role, g.policy, g.path, ",".join(g.capabilities)] for g in rows
    ]
    if output == "markdown":
        print("| " + " | ".join(headers) + " |\n|" + "---|" * len(headers))
        for v in values:
            print("| " + " | ".join(f"`{x}`" if i == 5 else x for i, x in enumerate(v)) + " |")
        return
    from rich.table import Table

    table = Table(*headers)
    for v in values:
        table.add_row(*v)
    out.print(table)
