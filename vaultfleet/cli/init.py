"""`vaultfleet init`: a new fleet repository."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vaultfleet.cli.common import fail, out


def init(
    directory: Annotated[Path, typer.Argument(help="Where to write the fleet repository (missing or empty).")],
    vault_address: Annotated[
        str | None,
        typer.Option("--vault-address", help="Vault's address for every stack (default: a placeholder to edit)."),
    ] = None,
) -> None:
    """Write a fleet repository: Pulumi.yaml, __main__.py, stacks/, policies/, requirements.txt, CI workflow.

    It holds only the fleet's own files; the program, CLI and schema come from this installed
    vaultfleet, pinned in its requirements.txt. Refuses a directory that is not empty.
    """
    from vaultfleet import __version__
    from vaultfleet.scaffold import PLACEHOLDER_ADDRESS, InitError
    from vaultfleet.scaffold import init as run

    try:
        written = run(directory, vault_address)
    except InitError as exc:
        fail(str(exc))
    out.print(f"wrote a fleet repository for vaultfleet {__version__} in {written.root}:", highlight=False)
    for name in written.files:
        out.print(f"  {name}", highlight=False)
    if not vault_address:
        out.print(f"edit Pulumi.yaml's vaultfleet:vaultAddress (now {PLACEHOLDER_ADDRESS}); then:", highlight=False)
    else:
        out.print("next:", highlight=False)
    # .github/setup.sh: .venv from requirements.txt (the pinned vaultfleet), the engine and plugins.
    out.print(f"  cd {written.root} && ./.github/setup.sh --engine", highlight=False)
    out.print(
        "  .venv/bin/vaultfleet onboard CLUSTER --context CONTEXT && .venv/bin/vaultfleet up vault CLUSTER",
        highlight=False,
    )
