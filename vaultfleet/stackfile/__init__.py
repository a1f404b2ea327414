"""The Pulumi project and its stack files, each read once per command.

`Project` is the directory holding Pulumi.yaml: its name, the fleet-wide defaults, stacks/ and
policies/. `StackFile` is one stacks/Pulumi.<name>.yaml: its document, its kind and its typed
settings (the schema `pulumi up`, `preview` and `validate` share). Everything that needs a stack
file gets it from here, so a command reads each file once and every command reads it alike.
Light on imports: the CLI's fast path (`--help`, `validate`) starts here.
"""

from __future__ import annotations

import importlib.util
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from vaultfleet.stackfile.errors import NAMESPACE, ConfigError

if TYPE_CHECKING:
    from vaultfleet.stackfile.schema import ClusterStack, SharedStack

# What every stack's program reads besides its own stack file: a change to any of these touches
# every stack (`preview --changed-since`, and the inputs fingerprint of the preview skip).
# Path -> glob of the files that count inside it (None: the path is a file).
PROGRAM_INPUTS: dict[str, str | None] = {
    "Pulumi.yaml": None,
    "__main__.py": None,
    "pyproject.toml": None,
    "requirements.txt": None,
    "components": "*.py",
    "vaultfleet": "*.py",
    "policies": "*.hcl",
}
# A fleet repository (`vaultfleet init`) holds no program code: its program is the installed
# package's, whose files count in its place (an upgrade changes every stack's inputs).
_PACKAGES = ("components", "vaultfleet")


def stack_file_name(stack: str) -> str:
    """stacks/Pulumi.<stack>.yaml, as errors show it (relative to the project)."""
    return f"stacks/Pulumi.{stack}.yaml"


class Project:
    """The directory holding Pulumi.yaml, with stacks/ and policies/."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self._stacks: dict[Path, StackFile] = {}

    @classmethod
    def find(cls) -> Project:
        """$VAULTFLEET_PROJECT, else the nearest directory at or above the working one with Pulumi.yaml."""
        if os.environ.get("VAULTFLEET_PROJECT"):
            return cls(Path(os.environ["VAULTFLEET_PROJECT"]))
        here = Path.cwd().resolve()
        for candidate in [here, *here.parents]:
            if (candidate / "Pulumi.yaml").exists():
                return cls(candidate)
        raise FileNotFoundError(f"no Pulumi.yaml in {here} or its parents; run vaultfleet inside the project")

    @property
    def stacks_dir(self) -> Path:
        return self.root / "stacks"

    @property
    def policy_dir(self) -> Path:
        return self.root / "policies"

    @cached_property
    def document(self) -> dict[str, Any]:
        return yaml.safe_load((self.root / "Pulumi.yaml").read_text()) or {}

    @property
    def name(self) -> str:
        return self.document.get("name", "")

    def check_layout(self) -> None:
        """ConfigError unless the engine reads the stack files vaultfleet reads: stacks/. Another
        stackConfigDir (unset: the project's root) would run values no check, review or selection saw."""
        from vaultfleet.stackfile.errors import ConfigError

        where = self.document.get("stackConfigDir")
        if where != "stacks":
            raise ConfigError(
                [("Pulumi.yaml", "stackConfigDir", f"must be `stacks` (vaultfleet reads stacks/), not {where!r}")]
            )

    @cached_property
    def defaults(self) -> dict[str, Any]:
        """The fleet-wide `vaultfleet:` values of Pulumi.yaml (keys without the namespace)."""
        values = {}
        for key, spec in (self.document.get("config") or {}).items():
            if not key.startswith(f"{NAMESPACE}:"):
                continue
            # A mapping is Pulumi's declaration (type, description, value or default), never a
            # value: a declared key without a value or default sets nothing.
            if isinstance(spec, dict):
                if "value" not in spec and "default" not in spec:
                    continue
                spec = spec.get("value", spec.get("default"))
            values[key.split(":", 1)[1]] = spec
        return values

    def stack_names(self) -> list[str]:
        return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in self.stacks_dir.glob("Pulumi.*.yaml"))

    def stack(self, name_or_path: str) -> StackFile:
        """The stack file of a stack name, or the file at a path ending in .yaml/.yml; read once."""
        path = Path(name_or_path)
        if path.suffix not in (".yaml", ".yml"):
            path = self.stacks_dir / f"Pulumi.{name_or_path}.yaml"
        key = path.resolve()
        if key not in self._stacks:
            self._stacks[key] = StackFile(self, path)
        return self._stacks[key]

    def stacks(self, names: list[str] | None = None) -> list[StackFile]:
        """The named stacks (names or paths); every stack file in stacks/ when none are named."""
        return [self.stack(n) for n in (names or self.stack_names())]

    def shared_stacks(self) -> list[StackFile]:
        return [s for s in self.stacks() if s.is_shared]

    def program_files(self) -> list[Path]:
        """Every file of PROGRAM_INPUTS that exists, in a stable order."""
        files = []
        for name, pattern in PROGRAM_INPUTS.items():
            path = self.root / name
            if pattern is None:
                files.append(path)
            else:
                files += sorted(p for p in path.rglob(pattern) if "__pycache__" not in p.parts)
        for package in _PACKAGES:
            if not (self.root / package).is_dir():
                installed = Path(importlib.util.find_spec(package).origin).parent  # found, not imported
                files += sorted(p for p in installed.rglob("*.py") if "__pycache__" not in p.parts)
        return files

    def touches_every_stack(self, relative: str) -> bool:
        """Whether a change to this project-relative path can change any stack's program."""
        return any(relative == name or relative.startswith(f"{name}/") for name in PROGRAM_INPUTS)


class StackFileError(ValueError):
    """A stack file that cannot be read as YAML; `file` names it."""

    def __init__(self, file: str, message: str):
        self.file = file
        super().__init__(f"{file}: {message}")


class StackFile:
    """One stack file: read once, parsed into typed settings once."""

    def __init__(self, project: Project, path: Path, text: str | None = None):
        """`text`: the file's content when it is not (yet) on disk, e.g. one `onboard` is about to write."""
        self.project = project
        self.path = path if path.is_absolute() else project.root / path
        self.name = path.name.removeprefix("Pulumi.").rsplit(".", 1)[0]
        self._text = text

    @property
    def shown(self) -> str:
        """The path as errors show it: relative to the project when inside it."""
        return (
            str(self.path.relative_to(self.project.root))
            if self.path.is_relative_to(self.project.root)
            else str(self.path)
        )

    @cached_property
    def document(self) -> dict[str, Any]:
        """The YAML document; StackFileError when it is missing or not YAML."""
        try:
            return yaml.safe_load(self._text if self._text is not None else self.path.read_text()) or {}
        except FileNotFoundError:
            raise StackFileError(self.shown, "no such stack file") from None
        except yaml.YAMLError as exc:
            raise StackFileError(self.shown, f"not valid YAML: {exc}") from None

    @property
    def config(self) -> dict[str, Any]:
        return self.document.get("config") or {}

    @cached_property
    def values(self) -> dict[str, Any]:
        """The stack's `vaultfleet:` values as the engine sees them: Pulumi.yaml's defaults, then the file."""
        values = dict(self.project.defaults)
        values.update({k.split(":", 1)[1]: v for k, v in self.config.items() if k.startswith(f"{NAMESPACE}:")})
        return values

    @property
    def secrets_provider(self) -> str | None:
        """The stack file's top-level `secretsprovider` (e.g. hashivault://vaultfleet-<name>), or None
        (the passphrase); `pulumi stack init` needs it named, it does not read it from the file."""
        value = self.document.get("secretsprovider")
        return value if isinstance(value, str) and value else None

    @property
    def is_shared(self) -> bool:
        """`vaultfleet:kind: shared`; False for a file that does not read (validate names it)."""
        try:
            return self.config.get(f"{NAMESPACE}:kind") == "shared"
        except StackFileError:
            return False

    @property
    def kube_context(self) -> str | None:
        """The cluster's kube context as written (None for a shared stack or an unreadable file)."""
        try:
            cluster = self.config.get(f"{NAMESPACE}:cluster") or {}
        except StackFileError:
            return None
        return cluster.get("kubeContext") if isinstance(cluster, dict) else None

    @cached_property
    def settings(self) -> ClusterStack | SharedStack:
        """The typed settings; raises StackFileError or ConfigError (file, field, message)."""
        from vaultfleet.stackfile.schema import parse

        self.project.check_layout()
        return parse(self.values, self.name, self.shown, secrets_provider=self.secrets_provider)

    def valid_settings(self) -> ClusterStack | SharedStack | None:
        """The settings, or None when the file does not validate (the caller leaves the error to others)."""
        try:
            return self.settings
        except (StackFileError, ConfigError):
            return None


__all__ = ["NAMESPACE", "PROGRAM_INPUTS", "ConfigError", "Project", "StackFile", "StackFileError", "stack_file_name"]
