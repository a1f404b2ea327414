"""`python -m vaultfleet.cli`: the same command line as the `vaultfleet` script."""

from vaultfleet.cli import app

app()
