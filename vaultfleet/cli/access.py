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
    # The pipeline's applier holds every cluster's applier policy: the whole fleet's, not only the named.
    fleet = [s.valid_settings() for s in project.stacks() if not s.is_shared]
    rows = grants(loaded, project.policy_dir, [c for c in fleet if c is not None])
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
    out.print(_grouped(rows))


def _grouped(rows):
    """Who (cluster, ServiceAccount, role) as a heading, then each policy's paths beneath it: nothing
    is cut in a narrow terminal, a long path folds instead."""
    from itertools import groupby

    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts = []
    for (cluster, namespace, account, role, login), grants in groupby(
        rows, key=lambda g: (g.cluster, g.namespace, g.service_account, g.role, g.login)
    ):
        parts.append(
            Text.assemble(
                (cluster, "bold"), f" {namespace}/{account} ", ("role ", "dim"), (role, "bold"), (f"  ({login})", "dim")
            )
        )
        for policy, rules in groupby(grants, key=lambda g: g.policy):
            table = Table(box=None, show_header=False, padding=(0, 1, 0, 4), expand=False)
            table.add_column("path", overflow="fold")
            table.add_column("capabilities", overflow="fold", style="green")
            for rule in rules:
                table.add_row(rule.path, ", ".join(rule.capabilities))
            parts += [Text(f"  {policy}", style="cyan"), table]
    return Group(*parts)
