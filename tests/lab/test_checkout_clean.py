"""The lab leaves the checkout clean: `pulumi stack init` of the tracked lab stacks, in the lab's
Pulumi environment (its fixed, public passphrase: docs/lab.md), changes no byte of their stack
files, because each already carries the `encryptionsalt` that belongs to that passphrase."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from vaultfleet.lab.record import LAB_PASSPHRASE

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]
STACKS = ["lab-a", "lab-b", "vault"]


def test_stack_init_leaves_the_tracked_lab_stack_files_byte_identical(lab, tmp_path):
    assert lab.passphrase_file.read_text() == LAB_PASSPHRASE
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "Pulumi.yaml", project / "Pulumi.yaml")
    shutil.copytree(REPO / "stacks", project / "stacks")
    (tmp_path / "backend").mkdir()
    env = {
        **lab.env(),  # PATH with the pinned pulumi, PULUMI_CONFIG_PASSPHRASE_FILE, offline settings
        "HOME": os.environ.get("HOME", "/root"),
        "PULUMI_HOME": str(tmp_path / "pulumi-home"),
        # A backend of its own: other lab tests create these stacks in the lab's.
        "PULUMI_BACKEND_URL": f"file://{tmp_path / 'backend'}",
    }
    for stack in STACKS:
        done = subprocess.run(
            ["pulumi", "stack", "init", stack, "--non-interactive"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    for stack in STACKS:
        name = f"stacks/Pulumi.{stack}.yaml"
        assert (project / name).read_bytes() == (REPO / name).read_bytes(), f"pulumi stack init changed {name}"
