"""The `vaultfleet` command line. Heavy modules (Pulumi, hvac, kubernetes) are imported inside
commands so that `--help` and `validate` start fast."""

from __future__ import annotations

import typer

from vaultfleet import cli_checks, cli_consumers, cli_fleet, cli_lab, cli_validate

app = typer.Typer(
    help="Onboard a fleet of Kubernetes clusters to one Vault, declaratively, on Pulumi.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold tokens: keep them out of tracebacks
)
app.add_typer(cli_lab.app, name="lab")
app.command()(cli_validate.validate)
for command in (
    cli_checks.onboard, cli_fleet.preview, cli_fleet.up, cli_fleet.destroy, cli_checks.verify, cli_checks.access,
    cli_consumers.consumers,
):
    app.command()(command)

if __name__ == "__main__":
    app()
