"""Where the engine, the provider plugins, the servers and the lab's tools are found: the tool cache
that `make tools` fills (~/.cache/vaultfleet/tools, or $VAULTFLEET_TOOLS), then PATH."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def tools_bin_dir() -> Path:
    base = os.environ.get("VAULTFLEET_TOOLS") or Path.home() / ".cache" / "vaultfleet" / "tools"
    return Path(base) / "bin"


def search_path() -> str:
    """PATH with the tool cache first, so the pinned builds win over anything else installed."""
    return os.pathsep.join([str(tools_bin_dir()), os.environ.get("PATH", "")])


class MissingTool(RuntimeError):
    pass


def find_tool(*names: str) -> str:
    """The first of `names` found in the tool cache or on PATH, else a clear error."""
    for name in names:
        found = shutil.which(name, path=search_path())
        if found:
            return found
    raise MissingTool(
        f"{' or '.join(names)} not found in {tools_bin_dir()} or on PATH; run `make tools` to build the toolchain"
    )
