"""The `vaultfleet` command line: one module per command group, wired here.

Heavy modules (Pulumi, hvac, kubernetes) are imported inside commands, so that `--help` and
`validate` start fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from vaultfleet.cli import access, adopt, consumers, fleet, init, lab, migrate, onboard, release, validate, verify

app = typer.Typer(
    help="Onboard a fleet of Kubernetes clusters to one Vault, declaratively, on Pulumi.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold tokens: keep them out of tracebacks
)


def _print_version(value: bool) -> None:
    if value:
        from vaultfleet import __version__

        print(f"vaultfleet {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the installed version and exit."),
    ] = False,
) -> None:
    """Onboard a fleet of Kubernetes clusters to one Vault, declaratively, on Pulumi."""


app.add_typer(lab.app, name="lab")
for command in (
    init.init,
    validate.validate,
    onboard.onboard,
    adopt.adopt,
    fleet.preview,
    fleet.up,
    fleet.destroy,
    release.release,
    migrate.migrate,
    fleet.matrix,
    verify.verify,
    access.access,
    consumers.consumers,
):
    app.command()(command)

if __name__ == "__main__":
    app()
