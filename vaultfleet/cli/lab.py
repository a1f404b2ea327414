"""`vaultfleet lab ...`: start, inspect and stop the local lab."""

from __future__ import annotations

import json
import shlex
from enum import StrEnum
from typing import Annotated, Literal

import typer

from vaultfleet.cli.common import err, out

app = typer.Typer(help="Local lab: a Vault-compatible server and Kubernetes control planes on 127.0.0.1.")


@app.command()
def up(
    clusters: Annotated[
        int, typer.Option("--clusters", "-n", help="Number of Kubernetes clusters (lab-a, lab-b, ...).")
    ] = 2,
    with_postgres: Annotated[
        bool,
        typer.Option(
            "--postgres/--no-postgres", help="Also start PostgreSQL on 127.0.0.1 (Debian package postgresql)."
        ),
    ] = True,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="Vault-compatible server to run: openbao (bao) or vault (HashiCorp Vault). "
            "Default: $VAULTFLEET_LAB_SERVER, else openbao.",
            show_default=False,
        ),
    ] = None,
    high_availability: Annotated[
        bool,
        typer.Option(
            "--ha",
            help="Three nodes of the server on raft storage behind HAProxy (Debian package haproxy), at "
            "the same address: a highly available Vault (docs/ha-vault.md).",
        ),
    ] = False,
) -> None:
    """Start the lab and wait until every part is healthy."""
    from vaultfleet.lab import lab, servers
    from vaultfleet.lab.record import LabError
    from vaultfleet.toolchain import MissingTool

    try:
        kind = servers.server_kind(server) if server else servers.from_env()
    except ValueError as exc:
        err.print(f"[red]lab up failed:[/] {exc}")
        raise typer.Exit(code=2) from None
    try:
        state = lab.up(
            clusters,
            echo=lambda m: err.print(f"[dim]lab:[/] {m}"),
            with_postgres=with_postgres,
            server=kind,
            high_availability=high_availability,
        )
    except (LabError, MissingTool, ValueError) as exc:
        err.print(f"[red]lab up failed:[/] {exc}")
        raise typer.Exit(code=2) from None
    except (RuntimeError, TimeoutError) as exc:
        err.print(f"[red]lab up failed, everything it started was stopped:[/] {exc}")
        raise typer.Exit(code=1) from None
    out.print(
        f"lab up in {state.startup_seconds:.1f}s: {state.server.product} {state.vault_version} at {state.vault_addr}"
        f" (CLI: {state.vault_cli})"
    )
    if state.ha:
        nodes = ", ".join(f"{n.name} {n.addr}" for n in state.vault_nodes)
        out.print(f"  HA: HAProxy at {state.vault_addr} in front of the active node of {nodes} (raft)")
    for c in state.clusters:
        out.print(f"  context {c.name}: kube-apiserver {c.server}")
    if state.postgres is not None:
        pg = state.postgres
        out.print(
            f"  postgresql {pg.version} at {pg.host}:{pg.port}: superuser {pg.superuser}, password in {pg.password_file}"
        )
    out.print(f"  kubeconfig {state.kubeconfig}, Pulumi backend {state.backend_url}")
    out.print('prepare a shell with: eval "$(vaultfleet lab env)"')


@app.command()
def down() -> None:
    """Stop exactly the processes the lab started (by PID) and remove its state."""
    from vaultfleet.lab import lab
    from vaultfleet.lab.record import LabError

    try:
        stopped = lab.down(echo=None)
    except LabError as exc:
        err.print(f"[red]lab down failed, nothing was deleted:[/] {exc}", highlight=False)
        raise typer.Exit(code=2) from None
    out.print(f"lab down: stopped {len(stopped)} processes" + (": " + ", ".join(stopped) if stopped else ""))


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Health of each lab component. Exit 1 when the lab is not running or a part is unhealthy."""
    from rich.table import Table

    from vaultfleet.lab import lab
    from vaultfleet.lab.record import LabState

    rows = lab.status()
    if as_json:
        out.print_json(json.dumps(rows))
    elif not rows:
        out.print("no lab running (start one with `vaultfleet lab up`)")
    else:
        state = LabState.load()
        if state is not None:
            out.print(f"{state.server.product} {state.vault_version} at {state.vault_addr} (CLI: {state.vault_cli})")
        table = Table("component", "pid", "running", "healthy")
        for r in rows:
            table.add_row(r["component"], str(r["pid"]), _yes(r["running"]), _yes(r["healthy"]))
        out.print(table)
    if not rows or not all(r["healthy"] for r in rows):
        raise typer.Exit(code=1)


@app.command()
def env(
    backend: Annotated[
        Literal["file", "postgres"],
        typer.Option(
            "--backend",
            help="Pulumi state backend: file (the lab directory) or postgres (a database in the lab's "
            "PostgreSQL, with locking shared by every process: what several runners need).",
        ),
    ] = "file",
) -> None:
    """Shell exports for the lab: eval "$(vaultfleet lab env)". Secrets are read from files, never printed."""
    from vaultfleet.lab.record import LabState

    state = LabState.load()
    if state is None:
        err.print("no lab running: start one with `vaultfleet lab up`")
        raise typer.Exit(code=1)
    exports = state.env()
    if backend == "postgres":
        from vaultfleet.lab import state_backend

        if state.postgres is None:
            err.print("the lab runs no PostgreSQL (started with --no-postgres)")
            raise typer.Exit(code=2)
        state_backend.ensure_database(state.postgres)
        exports["PULUMI_BACKEND_URL"] = state_backend.state_backend_url(state.postgres)
    for key, value in exports.items():
        print(f"export {key}={shlex.quote(value)}")
    # The token is read when the shell evaluates this line, so it never appears in this output.
    print(f'export VAULT_TOKEN="$(cat {shlex.quote(str(state.token_file))})"')
    if state.postgres is not None:  # psql and friends: PGHOST/PGPORT/PGUSER come from state.env()
        print(f'export PGPASSWORD="$(cat {shlex.quote(state.postgres.password_file)})"')


class ControllerKind(StrEnum):
    """The `--kind` of `vaultfleet consumers` whose output a controller reads."""

    eso = "eso"
    vso = "vso"
    injector = "injector"


@app.command()
def controllers(
    cluster: Annotated[str, typer.Argument(help="Lab cluster to run them against (lab-a, lab-b, ...).")],
    kinds: Annotated[
        list[ControllerKind] | None,
        typer.Option(
            "--kind",
            help="eso (external-secrets), vso (Vault Secrets Operator) or injector (Vault agent injector); "
            "repeat for several. Default: all three.",
            show_default=False,
        ),
    ] = None,
    stop: Annotated[bool, typer.Option("--stop", help="Stop them instead (the CRDs and objects stay).")] = False,
) -> None:
    """Run the secret consumers' controllers against a lab cluster, as the lab tests do: their CRDs
    installed, each a lab process (`lab down` stops it). Starts only those not running already."""
    from vaultfleet.lab import controllers as lab_controllers
    from vaultfleet.lab.record import LabError, LabState
    from vaultfleet.toolchain import MissingTool

    state = LabState.load()
    if state is None:
        err.print("[red]error[/]: no lab running: start one with `vaultfleet lab up`", highlight=False)
        raise typer.Exit(code=1)
    found = next((c for c in state.clusters if c.name == cluster), None)
    if found is None:
        names = ", ".join(c.name for c in state.clusters)
        err.print(f"[red]error[/]: the lab has no cluster {cluster!r} (it has {names})", highlight=False)
        raise typer.Exit(code=2)
    # In the order of the CLI's help, without repeats.
    wanted = [lab_controllers.BY_CONSUMER_KIND[k.value] for k in ControllerKind if k in (kinds or ControllerKind)]
    if stop:
        stopped = lab_controllers.stop(state, found, wanted)
        for proc in stopped:
            out.print(f"{proc.name}: stopped (pid {proc.pid})")
        if not stopped:
            out.print(f"none of {', '.join(wanted)} was running for {cluster}")
        return
    try:
        started = lab_controllers.start(state, found, wanted, echo=lambda m: err.print(f"[dim]lab:[/] {m}"))
    except (LabError, MissingTool) as exc:
        err.print(f"[red]lab controllers failed, nothing was started:[/] {exc}", highlight=False)
        raise typer.Exit(code=2) from None
    except (RuntimeError, TimeoutError) as exc:
        err.print(f"[red]lab controllers failed:[/] {exc}", highlight=False)
        raise typer.Exit(code=1) from None
    for kind, proc, now in started:
        what = "started" if now else "already running"
        out.print(f"{kind} for {cluster}: {what}, pid {proc.pid}, log {proc.log}", highlight=False)


def _yes(flag: bool) -> str:
    return "[green]yes[/]" if flag else "[red]no[/]"
