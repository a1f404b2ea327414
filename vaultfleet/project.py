"""Locating the Pulumi project; light on imports (the CLI's fast path uses it)."""

from __future__ import annotations

import os
from pathlib import Path


def project_dir() -> Path:
    """The Pulumi project (directory with Pulumi.yaml): $VAULTFLEET_PROJECT or the nearest parent of cwd."""
    if os.environ.get("VAULTFLEET_PROJECT"):
        return Path(os.environ["VAULTFLEET_PROJECT"]).resolve()
    here = Path.cwd().resolve()
    for candidate in [here, *here.parents]:
        if (candidate / "Pulumi.yaml").exists():
            return candidate
    raise FileNotFoundError(f"no Pulumi.yaml in {here} or its parents; run vaultfleet inside the project")
