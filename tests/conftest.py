"""Helpers shared by the unit and the lab tests: project copies and stack-file edits.

Plain functions (imported: `from tests.conftest import edit_stack`) where a test or a helper class
calls them with arguments; the fixtures built on them are in tests/unit/conftest.py and
tests/lab/conftest.py.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# What `validate`, `access` and `consumers` read; the engine runs the program files as well.
STACK_FILES = ("Pulumi.yaml", "stacks", "policies")
PROGRAM_FILES = ("__main__.py", "components", "vaultfleet")


def copy_project_files(parent: Path, *, program: bool = False) -> Path:
    """`parent/project`: a copy of the repository's stack files (and, with `program`, the program's),
    so a test can edit them without touching the repository."""
    dest = parent / "project"
    dest.mkdir()
    for name in (*STACK_FILES, *(PROGRAM_FILES if program else ())):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO / name, dest / name)
    return dest


def edit_stack(project: Path, stack: str, change: Callable[[dict], object]) -> None:
    """Apply `change` to the `config:` mapping of stacks/Pulumi.<stack>.yaml, in place."""
    path = project / "stacks" / f"Pulumi.{stack}.yaml"
    doc = yaml.safe_load(path.read_text())
    change(doc["config"])
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def use_state_key(project: Path, stack: str) -> None:
    """Stack `stack` keeps its state's secrets under its Vault Transit key (the shared stack makes it)
    instead of the lab passphrase: `secretsprovider` in place of the passphrase's `encryptionsalt`."""
    path = project / "stacks" / f"Pulumi.{stack}.yaml"
    doc = yaml.safe_load(path.read_text())
    doc.pop("encryptionsalt", None)
    doc = {"secretsprovider": f"hashivault://vaultfleet-{stack}", **doc}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def add_team_role(config: dict, **extra) -> None:
    """The kv-namespace policy and a role `team` for every namespace, each reading only its own subtree."""
    config["vaultfleet:policies"] = ["kv-read", "kv-write", "kv-namespace"]
    config["vaultfleet:roles"].append(
        {
            "name": "team",
            "serviceAccounts": ["app"],
            "namespaces": ["*"],
            "policies": ["kv-namespace"],
            "audience": "vault",
            **extra,
        }
    )


def _tracked_changes() -> str:
    """What `git` sees changed in the repository's tracked files: names and content."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False).stdout

    return git("status", "--porcelain=v1", "--untracked-files=no") + git("diff", "HEAD", "--binary")


@pytest.fixture(scope="session", autouse=True)
def checkout_left_as_found():
    """The suite leaves the repository's tracked files as it found them (tests work on copies, the
    lab writes outside the checkout): compared at the start and the end of every session."""
    before = _tracked_changes()
    yield
    after = _tracked_changes()
    assert after == before, "the test session changed tracked files of the repository:\n" + after[:2000]
