"""`vaultfleet onboard`: a new cluster is one new stack file."""

from __future__ import annotations

from typing import Annotated

import typer

from vaultfleet.cli.common import err, load_project, out


def onboard(
    name: Annotated[str, typer.Argument(help="Cluster (and stack) name, a DNS label.")],
    context: Annotated[str, typer.Option("--context", help="kubeconfig context of the cluster.")],
    host: Annotated[
        str | None, typer.Option("--host", help="API server URL as Vault reaches it (default: the context's).")
    ] = None,
    namespace: Annotated[
        str, typer.Option("--namespace", help="Namespace of the reviewer ServiceAccount.")
    ] = "kube-system",
) -> None:
    """Write stacks/Pulumi.NAME.yaml from a kubeconfig context; never overwrites; validates it."""
    from vaultfleet.kubeconfig import KubeconfigError
    from vaultfleet.onboard import OnboardError
    from vaultfleet.onboard import onboard as run

    project = load_project()
    try:
        path = run(project, name, context, host, namespace)
    except (OnboardError, KubeconfigError) as exc:
        err.print(f"[red]onboard failed, nothing written:[/] {exc}", highlight=False)
        raise typer.Exit(code=2) from None
    if project.per_cluster:
        # The privileged stacks first: the shared one names the cluster in the pipeline's identities,
        # the cluster's access stack makes its mount, policies and applier policy.
        out.print(f"wrote {path}; next: vaultfleet up vault vault.{name} {name}  (the privileged stacks first)")
        return
    # The shared stack first: it makes the new cluster's mount, policies and applier policy.
    out.print(f"wrote {path}; next: vaultfleet up vault {name}  (the shared stack makes its mount and policies)")
