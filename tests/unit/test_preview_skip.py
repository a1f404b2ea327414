"""When a `--no-refresh` preview may skip the engine: only for a stack exactly as vaultfleet's last
successful up left it (inputs, state, toolchain binaries, installed packages).

The real thing (an up, then previews before and after an edit, a state edit and a refresh) is in
tests/lab/test_cli_lab.py.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest

from tests.harness import copy_project_files
from vaultfleet.fleet import skip
from vaultfleet.fleet.inputs import OUTPUT, inputs_fingerprint
from vaultfleet.stackfile import Project


@pytest.fixture()
def project(tmp_path, monkeypatch):
    """The whole project (the fingerprint covers the program too), as a Project, with a fake
    toolchain on PATH and a fake virtualenv."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    root = copy_project_files(tmp_path, program=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in skip.BINARIES:
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    record = root / ".venv/lib/python3.11/site-packages/pulumi-3.184.0.dist-info/RECORD"
    record.parent.mkdir(parents=True)
    record.write_text("pulumi/__init__.py,sha256=abc,100\n")
    return Project(root)


@pytest.fixture()
def env(tmp_path):
    return {
        "PATH": str(tmp_path / "bin"),
        "HOME": str(tmp_path / "home"),
        "PULUMI_BACKEND_URL": "file:///nowhere",
    }


def fingerprint(project: Project) -> str:
    """As the program computes it: a fresh read of the files (a new Project, nothing cached)."""
    return inputs_fingerprint(Project(project.root).stack("lab-a"))


def exported(project, *, pending=(), inputs=None, extra=()):
    outputs = {OUTPUT: inputs or fingerprint(project)}
    resources = [{"type": "pulumi:pulumi:Stack", "outputs": outputs}, *extra]
    return json.dumps({"deployment": {"pending_operations": list(pending), "resources": resources}})


def history(kind="update", result="succeeded"):
    return [{"version": 3, "kind": kind, "result": result, "endTime": "2026-11-23T12:22:52.000Z"}]


def fake_cli(monkeypatch, hist, state_text):
    def run_cli(args):
        return SimpleNamespace(stdout=json.dumps(hist) if args[:2] == ["stack", "history"] else state_text)

    monkeypatch.setattr(skip.engine, "cli", lambda *a: run_cli)


def up_then_check(monkeypatch, project, env, *, after_up=None, hist=None, state_after=None, state_at_up=None):
    """`remember_up` records the state as the up left it (`state_at_up`, default: the files'
    fingerprint and nothing else); `after_up` changes something; then the check, on `state_after`
    (default: the state as the up left it)."""
    state_text = state_at_up or exported(project)
    fake_cli(monkeypatch, history(), state_text)
    skip.remember_up(project, "lab-a", env)
    if after_up:
        after_up()
    fake_cli(monkeypatch, history() if hist is None else hist, state_after or state_text)
    return skip.unchanged_since_last_up(Project(project.root), "lab-a", env)


def test_a_stack_as_its_last_up_left_it_is_known_unchanged(monkeypatch, project, env):
    why, counts = up_then_check(monkeypatch, project, env)
    assert "engine not run" in why and counts == {"same": 1}  # the state's resources, all "same"


def test_without_a_record_of_the_up_the_engine_runs(monkeypatch, project, env):
    """A fresh CI runner, or a plain `pulumi up` nobody recorded: no skip."""
    fake_cli(monkeypatch, history(), exported(project))
    assert skip.unchanged_since_last_up(project, "lab-a", env) is None


def test_a_failed_or_destroyed_run_forgets_the_record(monkeypatch, project, env):
    assert up_then_check(monkeypatch, project, env, after_up=lambda: skip.forget(project, "lab-a", env)) is None


def _touch_binary(project, env, name):
    path = os.path.join(env["PATH"], name)
    os.utime(path, ns=(1, os.stat(path).st_mtime_ns + 1_000_000))


def _replace_binary(env, name):
    path = os.path.join(env["PATH"], name)
    os.replace(path, path + ".old")  # rebuilt: a new file (new inode) at the same path and size
    with open(path, "w") as f:
        f.write("#!/bin/sh\n")


@pytest.mark.parametrize(
    "case",
    [
        "last op a refresh",
        "last up failed",
        "no history",
        "state written after the up",
        "state edited: resource deleted",
        "pending operations",
        "inputs differ",
        "stack file edited",
        "policy edited",
        "engine binary rebuilt",
        "vault provider rebuilt",
        "kubernetes provider touched",
        "python package reinstalled",
        "python package added",
    ],
)
def test_anything_else_runs_the_engine(monkeypatch, project, env, case):
    """Each case changes only what its name says, so only the check it names can refuse the skip
    (removing that check from skip.py turns its case red): a state case leaves the root's fingerprint
    as the files give it, and a case for a check other than the state digest gives the check the
    state exactly as the up left it."""
    hist, state_after, after_up, state_at_up = None, None, None, None
    if case == "last op a refresh":
        hist = history(kind="refresh")
    elif case == "last up failed":
        hist = history(result="failed")
    elif case == "no history":
        hist = []
    elif case == "state written after the up":
        state_after = exported(project, extra=[{"type": "vault:index/policy:Policy", "outputs": {}}])
    elif case == "state edited: resource deleted":
        # A resource other than the stack's root: the fingerprint output stays, only the digest differs.
        state_at_up = exported(project, extra=[{"type": "vault:index/policy:Policy", "outputs": {}}])
        state_after = exported(project)
    elif case == "pending operations":
        # Recorded as is: only the pending-operations check, not the state digest, can tell.
        state_at_up = exported(project, pending=[{"type": "creating"}])
    elif case == "inputs differ":
        # The state's fingerprint output is not the files' (and the state is as recorded): only the
        # fingerprint check can tell.
        state_at_up = exported(project, inputs="0" * 64)
    elif case == "stack file edited":
        path = project.root / "stacks/Pulumi.lab-a.yaml"
        after_up = lambda: path.write_text(path.read_text().replace("ttl: 1h", "ttl: 2h"))  # noqa: E731
    elif case == "policy edited":
        path = project.root / "policies/kv-read.hcl"
        after_up = lambda: path.write_text(path.read_text() + "\n# edited\n")  # noqa: E731
    elif case == "engine binary rebuilt":
        after_up = lambda: _replace_binary(env, "pulumi")  # noqa: E731
    elif case == "vault provider rebuilt":
        after_up = lambda: _replace_binary(env, "pulumi-resource-vault")  # noqa: E731
    elif case == "kubernetes provider touched":
        after_up = lambda: _touch_binary(project, env, "pulumi-resource-kubernetes")  # noqa: E731
    elif case == "python package reinstalled":
        record = next(project.root.glob(".venv/lib/python*/site-packages/*.dist-info/RECORD"))
        after_up = lambda: record.write_text("pulumi/__init__.py,sha256=def,100\n")  # noqa: E731
    elif case == "python package added":
        extra = project.root / ".venv/lib/python3.11/site-packages/evil-1.0.dist-info/RECORD"

        def after_up():
            extra.parent.mkdir(parents=True)
            extra.write_text("sitecustomize.py,sha256=x,1\n")

    result = up_then_check(
        monkeypatch, project, env, after_up=after_up, hist=hist, state_after=state_after, state_at_up=state_at_up
    )
    assert result is None, case


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
