"""Unit-test fixtures: `project` (a scratch copy of the stack files the CLI runs on) and `victim` (a
file a planted link points at). The helpers the unit modules share (schema values, CLI calls, Pulumi
mocks, the lab-file checks) are in tests/harness/unit.py: `from tests.harness import cluster_values`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.harness.project import copy_project_files


@pytest.fixture()
def project(tmp_path, monkeypatch):
    """A copy of Pulumi.yaml, stacks/ and policies/; in-process CLI calls (CliRunner) use it."""
    dest = copy_project_files(tmp_path)
    monkeypatch.setenv("VAULTFLEET_PROJECT", str(dest))
    return dest


@pytest.fixture()
def git_project(project):
    """`project` as a git repository: a base commit, then the copy committed (HEAD)."""

    def git(*args):
        subprocess.run(["git", *args], cwd=project, check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "base")
    git("add", "-A")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "stacks")
    return project


@pytest.fixture()
def victim(tmp_path) -> Path:
    """A file outside every directory the lab writes to: what a planted link points at."""
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / "victim"
    path.write_text("precious")
    path.chmod(0o644)
    return path
