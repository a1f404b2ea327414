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


# Fleet-wide (Pulumi.yaml only): where each cluster's access (its auth mount, policy bodies, applier
# policy, state key) is written. `shared`: by the shared stack, which then reads every stack file
# and grows with the fleet. `per-cluster`: by the cluster's own privileged stack `vault.<cluster>`,
# run by the admin stage from the cluster's stack file, so a one-cluster change runs nothing that
# grows with the fleet (docs/fleet-layout.md).
CLUSTER_ACCESS_KEY = "clusterAccess"
CLUSTER_ACCESS_LAYOUTS = ("shared", "per-cluster")
# Keys a stack file may not set in the per-cluster layout (StackFile.check_fleet_only_keys): the
# fleet's prefix, Vault and mounts, which the access stacks (run with the admin's token) use.
PER_CLUSTER_FLEET_KEYS = ["mountPrefix", "vaultAddress", "kvMount", "databaseMount"]
# The top-level keys of a stack file: its config and Pulumi's secrets settings.
STACK_FILE_KEYS = {"config", "secretsprovider", "encryptionsalt", "encryptedkey"}
# A stack file's name is a DNS label (no dot), so no file is ever named like an access stack.
ACCESS_PREFIX = "vault."


def access_stack_name(cluster: str) -> str:
    """The privileged stack that writes `cluster`'s access in the per-cluster layout."""
    return f"{ACCESS_PREFIX}{cluster}"


def access_cluster(stack: str) -> str | None:
    """The cluster an access stack name (vault.<cluster>) stands for; None for any other name."""
    return (
        stack[len(ACCESS_PREFIX) :]
        if stack.startswith(ACCESS_PREFIX) and "." not in stack[len(ACCESS_PREFIX) :]
        else None
    )


class Project:
    """The directory holding Pulumi.yaml, with stacks/ and policies/."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self._stacks: dict[Path | tuple[Path, str], StackFile] = {}
        self._shared: tuple[tuple[str, ...], list[StackFile]] | None = None

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
        """The stacks that have a stack file of their own (never an access stack: see all_stack_names).
        A file whose name has a dot is none (stack names are DNS labels; `validate` names it)."""
        return sorted(name for name in self._file_names() if "." not in name)

    def misnamed_stack_files(self) -> list[str]:
        """stacks/Pulumi.<name>.yaml files whose <name> has a dot: no stack reads them, and one named
        like an access stack (vault.<cluster>) would look like its file."""
        return sorted(stack_file_name(name) for name in self._file_names() if "." in name)

    def misplaced_stack_files(self) -> list[str]:
        """stacks/Pulumi.<name>.yaml entries that are symbolic links: a change to the file they
        point at would select no stack, so they are no stack."""
        return sorted(stack_file_name(p.name[len("Pulumi.") : -len(".yaml")]) for p in self._links())

    def _links(self) -> list[Path]:
        return [self.stacks_dir / entry.name for entry in self._entries() if entry.is_symlink()]

    def _file_names(self) -> list[str]:
        return [entry.name[len("Pulumi.") : -len(".yaml")] for entry in self._entries() if not entry.is_symlink()]

    def _entries(self) -> list[os.DirEntry]:
        """stacks/Pulumi.*.yaml, one directory read (a fleet of 1,000 asks often)."""
        try:
            with os.scandir(self.stacks_dir) as entries:
                return [e for e in entries if e.name.startswith("Pulumi.") and e.name.endswith(".yaml")]
        except FileNotFoundError:
            return []

    @property
    def cluster_access(self) -> str:
        """`shared` or `per-cluster` (Pulumi.yaml's vaultfleet:clusterAccess; `shared` when unset).
        An unknown value is reported by the schema (StackFile.settings), and counts as `shared` here."""
        value = self.defaults.get(CLUSTER_ACCESS_KEY, "shared")
        return value if value in CLUSTER_ACCESS_LAYOUTS else "shared"

    @property
    def per_cluster(self) -> bool:
        return self.cluster_access == "per-cluster"

    def access_stack_names(self, names: list[str] | None = None) -> list[str]:
        """The access stacks (vault.<cluster>) of the named stack files (every file when none are
        named) in the per-cluster layout: one per cluster stack file; none in the shared layout."""
        if not self.per_cluster:
            return []
        return [
            access_stack_name(n)
            for n in (self.stack_names() if names is None else names)
            if not self.stack(n).is_shared
        ]

    def knows(self, name: str) -> bool:
        """Whether `name` is a stack of the fleet: one with a stack file, or (per-cluster layout) the
        access stack of a cluster's file."""
        cluster = access_cluster(name)
        if cluster is None:
            return name in self.stack_names()  # no dotted name, no symbolic link
        return self.per_cluster and self.knows(cluster) and not self.stack(cluster).is_shared

    def all_stack_names(self) -> list[str]:
        """Every stack of the fleet: one per stack file, and in the per-cluster layout each cluster's
        access stack."""
        return sorted(self.stack_names() + self.access_stack_names())

    def stack(self, name_or_path: str) -> StackFile:
        """The stack file of a stack name (an access stack's is its cluster's file), or the file at
        a path ending in .yaml/.yml; read once."""
        path = Path(name_or_path)
        cluster = access_cluster(name_or_path)
        if cluster is not None:
            path = self.stacks_dir / f"Pulumi.{cluster}.yaml"
            key = (path.resolve(), name_or_path)
            if key not in self._stacks:
                self._stacks[key] = StackFile(self, path, stack_name=name_or_path)
            return self._stacks[key]
        if path.suffix not in (".yaml", ".yml"):
            path = self.stacks_dir / f"Pulumi.{name_or_path}.yaml"  # under the resolved root already
            key = path
        else:
            key = path.resolve()
        if key not in self._stacks:
            self._stacks[key] = StackFile(self, path)
        return self._stacks[key]

    def stacks(self, names: list[str] | None = None) -> list[StackFile]:
        """The named stacks (names or paths); every stack file in stacks/ when none are named."""
        return [self.stack(n) for n in (names or self.stack_names())]

    def shared_stacks(self) -> list[StackFile]:
        """The shared stack files (one in a valid fleet), found once per set of file names."""
        names = tuple(self.stack_names())
        if self._shared is None or self._shared[0] != names:
            self._shared = (names, [s for s in self.stacks(list(names)) if s.is_shared])
        return self._shared[1]

    def program_files(self) -> list[Path]:
        """Every file of PROGRAM_INPUTS that exists, in a stable order."""
        files = []
        for name, pattern in PROGRAM_INPUTS.items():
            path = self.root / name
            if pattern is None:
                files.append(path)
            else:
                files += sorted(p for p in path.rglob(pattern) if "__pycache__" not in p.parts)
        # Whatever else `import` could find first on the program's path (a root-level module or
        # package), and a second Pulumi project file.
        known = set(files)
        files += sorted(
            p
            for p in [*self.root.glob("*.py"), *self.root.glob("*/__init__.py"), *self.root.glob("Pulumi.*")]
            if p not in known and p.name != "Pulumi.yaml" and (p.suffix == ".py" or p.suffix in (".json", ".yml"))
        )
        for package in _PACKAGES:
            if not (self.root / package).is_dir():
                installed = Path(importlib.util.find_spec(package).origin).parent  # found, not imported
                files += sorted(p for p in installed.rglob("*.py") if "__pycache__" not in p.parts)
        return files

    def touches_every_stack(self, relative: str) -> bool:
        """Whether a change to this project-relative path can change any stack's program: the
        program's inputs, any Python file (the language host puts the project first on sys.path,
        so a `yaml.py` beside __main__.py is what `import yaml` loads) and any Pulumi project file
        (a Pulumi.json would be read before Pulumi.yaml)."""
        top = relative.split("/", 1)[0]
        return (
            any(relative == name or relative.startswith(f"{name}/") for name in PROGRAM_INPUTS)
            or relative.endswith((".py", ".pth"))
            or (top == relative and top.startswith("Pulumi.") and top.endswith((".json", ".yml", ".yaml")))
        )


class StackFileError(ValueError):
    """A stack file that cannot be read as YAML; `file` names it."""

    def __init__(self, file: str, message: str):
        self.file = file
        super().__init__(f"{file}: {message}")


class StackFile:
    """One stack file: read once, parsed into typed settings once."""

    def __init__(self, project: Project, path: Path, text: str | None = None, stack_name: str | None = None):
        """`text`: the file's content when it is not (yet) on disk, e.g. one `onboard` is about to write.
        `stack_name`: the engine's stack when it is not the file's own (an access stack, vault.<cluster>)."""
        self.project = project
        self.path = path if path.is_absolute() else project.root / path
        self.file_stack = path.name.removeprefix("Pulumi.").rsplit(".", 1)[0]
        """The stack the file is named for (the cluster, for an access stack)."""
        self.name = stack_name or self.file_stack
        self._text = text

    @property
    def is_access(self) -> bool:
        """The privileged stack vault.<cluster>, which writes the cluster's access from its file."""
        return self.name != self.file_stack

    @property
    def config_file_args(self) -> list[str]:
        """What the engine needs to read this stack's config: an access stack has no stack file of
        its own (onboarding stays one file) and reads its cluster's."""
        return ["--config-file", str(self.path)] if self.is_access else []

    @property
    def shown(self) -> str:
        """The path as errors show it: relative to the project when inside it."""
        return (
            str(self.path.relative_to(self.project.root))
            if self.path.is_relative_to(self.project.root)
            else str(self.path)
        )

    @cached_property
    def text(self) -> str:
        """The file's text; StackFileError when it is missing."""
        try:
            return self._text if self._text is not None else self.path.read_text()
        except FileNotFoundError:
            raise StackFileError(self.shown, "no such stack file") from None

    @cached_property
    def document(self) -> dict[str, Any]:
        """The YAML document; StackFileError when it is missing or not YAML."""
        try:
            return yaml.safe_load(self.text) or {}
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
        if self.is_access:
            return False
        try:
            # Most files, unparsed (a fleet of 1,000 is asked which one is): without the word, and
            # without a backslash (a YAML escape could spell it), no value can be `shared`.
            if "shared" not in self.text and "\\" not in self.text:
                return False
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
        self.check_fleet_only_keys()
        return parse(self.values, self.file_stack, self.shown, secrets_provider=self.secrets_provider)

    def check_fleet_only_keys(self) -> None:
        """ConfigError when the file sets a key only Pulumi.yaml may set: the layout every stack
        and the CLI must agree on without reading each other's files; in the per-cluster layout also
        the mount prefix (every cluster's policy names are then `<Pulumi.yaml's prefix>-<cluster>-...`,
        so an access stack checks a name against the fleet's without reading other files) and the
        Vault address (the admin's token runs the access stack: it goes to the fleet's Vault only)."""
        fleet_only = [CLUSTER_ACCESS_KEY] + (PER_CLUSTER_FLEET_KEYS if self.project.per_cluster else [])
        # What the engine would read under another spelling than vaultfleet reads: Pulumi takes
        # `ns:config:name` as `ns:name` (its legacy form), so every key is `<namespace>:<name>`.
        problems = [
            (
                self.shown,
                str(key),
                "a config key is `<namespace>:<name>` (one colon): Pulumi would read this one as another key",
            )
            for key in self.config
            if not isinstance(key, str) or key.count(":") != 1 or not all(key.split(":"))
        ]
        # Top-level keys the engine acts on beyond these (an `environment:` import) are no stack file's.
        problems += [
            (self.shown, str(key), f"not a stack-file key (allowed: {', '.join(sorted(STACK_FILE_KEYS))})")
            for key in self.document
            if key not in STACK_FILE_KEYS
        ]
        problems += [
            (
                self.shown,
                f"{NAMESPACE}:{key}",
                "fleet-wide: set it in Pulumi.yaml, where every stack and vaultfleet read it"
                + (" (the per-cluster layout)" if key != CLUSTER_ACCESS_KEY else ""),
            )
            for key in fleet_only
            if f"{NAMESPACE}:{key}" in self.config
        ]
        if problems:
            raise ConfigError(problems)

    def valid_settings(self) -> ClusterStack | SharedStack | None:
        """The settings, or None when the file does not validate (the caller leaves the error to others)."""
        try:
            return self.settings
        except (StackFileError, ConfigError):
            return None


__all__ = [
    "ACCESS_PREFIX",
    "CLUSTER_ACCESS_KEY",
    "NAMESPACE",
    "PER_CLUSTER_FLEET_KEYS",
    "PROGRAM_INPUTS",
    "ConfigError",
    "Project",
    "StackFile",
    "StackFileError",
    "access_cluster",
    "access_stack_name",
    "stack_file_name",
]
