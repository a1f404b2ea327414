"""Unit-test fixtures: a scratch copy of the stack files the CLI runs on."""

from __future__ import annotations

import pytest

from tests.conftest import copy_project_files


@pytest.fixture()
def project(tmp_path, monkeypatch):
    """A copy of Pulumi.yaml, stacks/ and policies/; in-process CLI calls (CliRunner) use it."""
    dest = copy_project_files(tmp_path)
    monkeypatch.setenv("VAULTFLEET_PROJECT", str(dest))
    return dest
