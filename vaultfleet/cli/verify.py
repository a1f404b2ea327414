"""`vaultfleet verify`: a real login per role."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from vaultfleet.cli.common import cluster_stack, fail, out


def verify(
    stack: Annotated[str, typer.Argument(help="Cluster stack to check.")],
    role: Annotated[str | None, typer.Option("--role", help="Only this role.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Log in for real with a ServiceAccount token per role; name the cause and fix of any failure."""
    from vaultfleet.stackfile.expectations import load
    from vaultfleet.verify.logins import verify as run
    from vaultfleet.verify.reviewer import reviewer_check

    project, settings = cluster_stack(stack, "verify a cluster stack")
    expectations, problems = load(project)
    if problems:
        fail("; ".join(f"{f}: {fld}: {msg}" for f, fld, msg in problems))
    checks = run(settings, project.policy_dir, settings.fleet.vault_address, only_role=role, expectations=expectations)
    if role and not checks:
        fail(f"no role '{role}' in {stack}")
    # The whole stack (no --role): in reviewer-token mode, the stored token's health too.
    reviewer = None if role else reviewer_check(settings)
    if as_json:
        print(json.dumps([c.__dict__ for c in checks], indent=2))
    else:
        if reviewer is not None and reviewer.ok:
            out.print(
                f"[green]ok[/]   {stack} reviewer token ({reviewer.secret}): Vault can review with it; {reviewer.expiry}"
            )
        elif reviewer is not None:
            out.print(
                f"[red]FAIL[/] {stack} reviewer token ({reviewer.secret}): {reviewer.cause}\n       fix: {reviewer.fix}",
                highlight=False,
            )
        for c in checks:
            if c.ok:
                out.print(
                    f"[green]ok[/]   {stack}/{c.role}: {c.service_account} logged in, policies {c.policies}, {len(c.capabilities)} path(s) checked"
                    + (f", {len(c.expectations)} expectation(s) hold" if c.expectations else "")
                )
            else:
                out.print(
                    f"[red]FAIL[/] {stack}/{c.role}: {c.service_account}: {c.cause}\n       fix: {c.fix}",
                    highlight=False,
                )
    if not all(c.ok for c in checks) or (reviewer is not None and not reviewer.ok):
        raise typer.Exit(code=1)
