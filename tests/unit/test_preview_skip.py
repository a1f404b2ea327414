"""When a preview may skip the engine: only for a stack exactly as its last successful up left it.

The real thing (an up, then previews before and after an edit and a refresh) is in tests/lab/test_cli_lab.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from vaultfleet.fleet import skip
from vaultfleet.project import Project
from vaultfleet.project.inputs import OUTPUT, inputs_fingerprint

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def project(tmp_path, monkeypatch):
    dest = tmp_path / "project"
    dest.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(REPO / name, dest / name)
    for name in ("stacks", "policies", "components", "vaultfleet"):
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    return Project(dest)


def state(project, *, written="2026-11-23T12:22:52.513Z", pending=(), inputs=None):
    outputs = {OUTPUT: inputs or fingerprint(project)}
    return {
        "deployment": {
            "manifest": {"time": written},
            "pending_operations": list(pending),
            "resources": [{"type": "pulumi:pulumi:Stack", "outputs": outputs}],
        }
    }


def fingerprint(project: Project) -> str:
    """As the program computes it: a fresh read of the files (a new Project, nothing cached)."""
    return inputs_fingerprint(Project(project.root).stack("lab-a"))


def history(kind="update", result="succeeded", ended="2026-11-23T12:22:52.000Z"):
    return [{"version": 0, "kind": kind, "result": result, "endTime": ended, "resourceChanges": {"same": 17}}]


def check(monkeypatch, project, hist, exported):
    def run_cli(args):
        return SimpleNamespace(stdout=json.dumps(hist if args[:2] == ["stack", "history"] else exported))

    monkeypatch.setattr(skip.engine, "cli", lambda *a: run_cli)
    return skip.unchanged_since_last_up(Project(project.root), "lab-a", {})


def test_a_stack_as_its_last_up_left_it_is_known_unchanged(monkeypatch, project):
    why, counts = check(monkeypatch, project, history(), state(project))
    assert "engine not run" in why and counts == {"same": 1}  # the state's resources, all "same"


@pytest.mark.parametrize(
    "case",
    [
        "last op a refresh",
        "last up failed",
        "no history",
        "state written after the up",
        "pending operations",
        "inputs differ",
        "stack file edited",
        "policy edited",
    ],
)
def test_anything_else_runs_the_engine(monkeypatch, project, case):
    hist, exported = history(), state(project)
    if case == "last op a refresh":
        hist = history(kind="refresh")
    elif case == "last up failed":
        hist = history(result="failed")
    elif case == "no history":
        hist = []
    elif case == "state written after the up":
        exported = state(project, written="2026-11-23T12:23:10.000Z")
    elif case == "pending operations":
        exported = state(project, pending=[{"type": "creating"}])
    elif case == "inputs differ":
        exported = state(project, inputs="0" * 64)
    elif case == "stack file edited":
        path = project.root / "stacks/Pulumi.lab-a.yaml"
        path.write_text(path.read_text().replace("ttl: 1h", "ttl: 2h"))
    elif case == "policy edited":
        path = project.root / "policies/kv-read.hcl"
        path.write_text(path.read_text() + "\n# edited\n")
    assert check(monkeypatch, project, hist, exported) is None


def test_the_fingerprint_covers_the_kube_context_the_program_reads(tmp_path, monkeypatch, project):
    before = fingerprint(project)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443"}}],
                "contexts": [{"name": "lab-a", "context": {"cluster": "c"}}],
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    assert fingerprint(project) != before
