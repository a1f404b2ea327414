"""`vaultfleet onboard | verify | access`."""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated

import typer

from vaultfleet.console import err, out


def load_stacks(names: list[str] | None):
    """The project and its validated stacks; errors printed and exit 2 when any stack is invalid."""
    from vaultfleet.project import project_dir
    from vaultfleet.validate import validate

    project = project_dir()
    findings, stacks = validate(project, names)
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        for f in errors:
            err.print(f"[red]error[/]: {f.file}: {f.field}: {f.message}", highlight=False)
        raise typer.Exit(code=2)
    return project, stacks


def onboard(
    name: Annotated[str, typer.Argument(help="Cluster (and stack) name, a DNS label.")],
    context: Annotated[str, typer.Option("--context", help="kubeconfig context of the cluster.")],
    host: Annotated[str | None, typer.Option("--host", help="API server URL as Vault reaches it (default: the context's).")] = None,
    namespace: Annotated[str, typer.Option("--namespace", help="Namespace of the reviewer ServiceAccount.")] = "kube-system",
) -> None:
    """Write stacks/Pulumi.NAME.yaml from a kubeconfig context; never overwrites; validates it."""
    from vaultfleet.kubeconfig import KubeconfigError
    from vaultfleet.onboard import OnboardError, onboard as run
    from vaultfleet.project import project_dir

    try:
        path = run(project_dir(), name, context, host, namespace)
    except (OnboardError, KubeconfigError) as exc:
        err.print(f"[red]onboard failed, nothing written:[/] {exc}", highlight=False)
        raise typer.Exit(code=2) from None
    out.print(f"wrote {path}; next: vaultfleet up {name}  (or: pulumi stack init {name} && pulumi up -s {name})")


def verify(
    stack: Annotated[str, typer.Argument(help="Cluster stack to check.")],
    role: Annotated[str | None, typer.Option("--role", help="Only this role.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Log in for real with a ServiceAccount token per role; name the cause and fix of any failure."""
    from vaultfleet.config import ClusterStack
    from vaultfleet.verify import verify as run

    project, stacks = load_stacks([stack])
    (settings,) = stacks
    if not isinstance(settings, ClusterStack):
        err.print(f"[red]{stack} is the shared stack; verify a cluster stack[/]")
        raise typer.Exit(code=2)
    checks = run(settings, project / "policies", settings.fleet.vault_address, only_role=role)
    if role and not checks:
        err.print(f"[red]no role '{role}' in {stack}[/]")
        raise typer.Exit(code=2)
    if as_json:
        print(json.dumps([c.__dict__ for c in checks], indent=2))
    else:
        for c in checks:
            if c.ok:
                out.print(f"[green]ok[/]   {stack}/{c.role}: {c.service_account} logged in, policies {c.policies}, {len(c.capabilities)} path(s) checked")
            else:
                out.print(f"[red]FAIL[/] {stack}/{c.role}: {c.service_account}: {c.cause}\n       fix: {c.fix}", highlight=False)
    if not all(c.ok for c in checks):
        raise typer.Exit(code=1)


class AccessFormat(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"


def access(
    stacks: Annotated[list[str] | None, typer.Argument(help="Stacks (default: all).")] = None,
    output: Annotated[AccessFormat, typer.Option("--format")] = AccessFormat.table,
) -> None:
    """Who can do what: cluster, namespace, ServiceAccount -> role -> policy -> path -> capabilities."""
    from vaultfleet.access import grants

    project, loaded = load_stacks(stacks)
    rows = grants(loaded, project / "policies")
    if output is AccessFormat.json:
        print(json.dumps([g.to_json() for g in rows], indent=2))
        return
    headers = ["cluster", "namespace", "serviceaccount", "role", "policy", "path", "capabilities"]
    values = [[g.cluster, g.namespace, g.service_account, g.role, g.policy, g.path, ",".join(g.capabilities)] for g in rows]
    if output is AccessFormat.markdown:
        print("| " + " | ".join(headers) + " |\n|" + "---|" * len(headers))
        for v in values:
            print("| " + " | ".join(f"`{x}`" if i == 5 else x for i, x in enumerate(v)) + " |")
        return
    from rich.table import Table

    table = Table(*headers)
    for v in values:
        table.add_row(*v)
    out.print(table)
