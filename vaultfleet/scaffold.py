"""`vaultfleet init DIR`: a new fleet repository, holding only the fleet's own files.

The installed package brings the program, the CLI and the schema; the fleet repository holds what
its owners write and review: Pulumi.yaml (the fleet-wide settings), stacks/ (the shared stack file,
then one file per cluster), policies/ (its own copy of the packaged templates: the fleet reviews
and may edit the bodies its clusters get), requirements.txt pinning this vaultfleet, and the CI
workflow of docs/github-actions.md with its two scripts.

The files come from the package (`vaultfleet/templates/fleet/`, one copy of each: this repository's
`__main__.py` is the template's, its `policies/` is what the template's `policies` links to), with
two values filled in: this version and the Vault address.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from vaultfleet import __version__

# The placeholder address Pulumi.yaml gets without --vault-address: valid (https), obviously not real.
PLACEHOLDER_ADDRESS = "https://vault.example.com:8200"

# Destination in the fleet repository -> template under vaultfleet/templates/fleet/. Dot names are
# stored without their dot: a `.gitignore` or `.github/` inside this repository's source tree would
# act on it. policies/ is copied whole, besides these.
FILES = {
    "Pulumi.yaml": "Pulumi.yaml",
    "__main__.py": "__main__.py",
    "requirements.txt": "requirements.txt",
    "stacks/Pulumi.vault.yaml": "stacks/Pulumi.vault.yaml",
    ".gitignore": "gitignore",
    ".github/workflows/fleet.yml": "github/workflows/fleet.yml",
    ".github/setup.sh": "github/setup.sh",
    ".github/vault-login.sh": "github/vault-login.sh",
}
EXECUTABLE = (".github/setup.sh", ".github/vault-login.sh")


class InitError(ValueError):
    """Nothing was written: the directory is not empty, or the written project would not validate."""


@dataclass(frozen=True)
class Written:
    root: Path
    files: list[str]  # relative to root, sorted


def templates():
    """The fleet templates as packaged (a Traversable: files in a wheel's install or this checkout)."""
    return resources.files("vaultfleet") / "templates" / "fleet"


def render(vault_address: str = PLACEHOLDER_ADDRESS) -> dict[str, str]:
    """Every file of a new fleet repository: relative path -> text."""
    base = templates()
    out = {dest: _fill(_read(base, source), vault_address) for dest, source in FILES.items()}
    for relative in _tree(base / "policies"):
        out[f"policies/{relative}"] = _read(base / "policies", relative)
    return out


def init(dest: Path, vault_address: str | None = None) -> Written:
    """Write a fleet repository into `dest` (created if missing; must be empty). The project is
    validated in a scratch directory first: on any error nothing is written."""
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise InitError(f"{dest} exists and is not a directory; nothing written")
    if dest.is_dir() and any(dest.iterdir()):
        raise InitError(f"{dest} is not empty; nothing written (init writes a new fleet repository into an empty one)")
    vault_address = vault_address or PLACEHOLDER_ADDRESS
    if not vault_address.isprintable() or any(c.isspace() for c in vault_address):
        raise InitError(f"--vault-address {vault_address!r}: a URL has no spaces; nothing written")
    files = render(vault_address)
    with tempfile.TemporaryDirectory(prefix="vaultfleet-init-") as scratch:
        _write(Path(scratch), files)
        _check(Path(scratch))
    dest.mkdir(parents=True, exist_ok=True)
    _write(dest, files)
    return Written(dest, sorted(files))


def _check(root: Path) -> None:
    from vaultfleet.stackfile import Project
    from vaultfleet.validate import validate

    findings, _ = validate(Project(root))
    errors = [f"{f.file}: {f.field}: {f.message}" for f in findings if f.severity == "error"]
    if errors:
        raise InitError("the new project would not validate, nothing written:\n" + "\n".join(errors))


def _write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if relative in EXECUTABLE:
            path.chmod(0o755)


def _fill(text: str, vault_address: str) -> str:
    return text.replace("@VERSION@", __version__).replace("@VAULT_ADDRESS@", vault_address)


def _read(base, relative: str) -> str:
    node = base
    for part in relative.split("/"):
        node = node / part
    return node.read_text()


def _tree(base, prefix: str = "") -> list[str]:
    """Every file below `base`, as relative paths ("fleet/vaultfleet-previewer.hcl")."""
    found = []
    for entry in base.iterdir():
        if entry.name == "__pycache__":
            continue
        if entry.is_dir():
            found += _tree(entry, f"{prefix}{entry.name}/")
        else:
            found.append(f"{prefix}{entry.name}")
    return sorted(found)


__all__ = ["FILES", "PLACEHOLDER_ADDRESS", "InitError", "Written", "init", "render"]
