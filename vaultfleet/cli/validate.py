"""`vaultfleet validate`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from vaultfleet.cli.common import err, format_option, load_project, out

Format = format_option("text", "json")


def validate(
    stacks: Annotated[
        list[str] | None, typer.Argument(help="Stack names or stack files (default: every file in stacks/).")
    ] = None,
    output: Format = "text",
    strict: Annotated[bool, typer.Option(help="Exit 1 on warnings too.")] = False,
) -> None:
    """Check stack files and policy templates without Vault, clusters or the Pulumi engine.

    Exit codes: 0 clean; 1 warnings only and --strict; 2 errors.
    """
    from vaultfleet.validate import validate as run

    findings, checked = run(load_project(), stacks, expectations=True)
    errors = [f for f in findings if f.severity == "error"]
    if output == "json":
        print(json.dumps({"stacks": [s.name for s in checked], "findings": [f.to_json() for f in findings]}, indent=2))
    else:
        for f in findings:
            color = "red" if f.severity == "error" else "yellow"
            err.print(f"[{color}]{f.severity}[/]: {f.file}: {f.field}: {f.message}", highlight=False)
        out.print(f"{len(checked)} stack(s) valid, {len(errors)} error(s), {len(findings) - len(errors)} warning(s)")
    if errors:
        raise typer.Exit(code=2)
    if strict and findings:
        raise typer.Exit(code=1)
