"""`vaultfleet lab controllers`: what it refuses, naming the problem, before it starts anything. No lab:
a lab record whose "running" processes are this test's own process (the lab starts them by PID)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vaultfleet.cli import app
from vaultfleet.lab import processes
from vaultfleet.lab.record import ClusterInfo, LabState

runner = CliRunner()


def _alive(name: str) -> processes.Tracked:
    """A recorded process that runs: this one, under a lab process's name."""
    return processes.Tracked(name, os.getpid(), processes._start_ticks(os.getpid()), log="")


@pytest.fixture()
def lab_dir(tmp_path, monkeypatch) -> Path:
    directory = tmp_path / "lab"
    directory.mkdir(mode=0o700)
    monkeypatch.setenv("VAULTFLEET_LAB_DIR", str(directory))
    return directory


def _record(directory: Path, *running: str) -> None:
    clusters = [ClusterInfo("lab-a", 16443, 17443), ClusterInfo("lab-b", 16444, 17444)]
    state = LabState(directory, "http://127.0.0.1:18200", "openbao", clusters, [_alive(n) for n in running])
    state.save()


def _controllers(*args: str):
    return runner.invoke(app, ["lab", "controllers", *args])


def test_without_a_lab_says_to_start_one(lab_dir):
    result = _controllers("lab-a")
    assert result.exit_code == 1
    assert "no lab running: start one with `vaultfleet lab up`" in result.output


def test_an_unknown_cluster_is_named_with_those_the_lab_has(lab_dir):
    _record(lab_dir, "kube-apiserver-lab-a")
    result = _controllers("lab-z")
    assert result.exit_code == 2
    assert "the lab has no cluster 'lab-z' (it has lab-a, lab-b)" in result.output


def test_a_cluster_whose_apiserver_is_down_is_refused(lab_dir):
    _record(lab_dir, "kube-apiserver-lab-a")
    result = _controllers("lab-b")
    assert result.exit_code == 2
    assert "kube-apiserver-lab-b is not running" in result.output


def test_missing_controller_binaries_say_make_tools(lab_dir, tmp_path, monkeypatch):
    _record(lab_dir, "kube-apiserver-lab-a")
    monkeypatch.setenv("VAULTFLEET_TOOLS", str(tmp_path / "no-tools"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    result = _controllers("lab-a", "--kind", "eso")
    assert result.exit_code == 2
    assert "external-secrets not found" in result.output and "make tools" in result.output
    assert LabState.load(lab_dir).processes == [_alive("kube-apiserver-lab-a")]  # nothing started


def test_a_kind_runs_for_one_cluster_at_a_time(lab_dir):
    # Its ports are the same for every cluster: the other cluster's must stop first.
    _record(lab_dir, "kube-apiserver-lab-a", "kube-apiserver-lab-b", "vault-secrets-operator-lab-a")
    result = _controllers("lab-b", "--kind", "vso")
    assert result.exit_code == 2
    assert "vault-secrets-operator already runs for lab-a" in result.output
    assert "`vaultfleet lab controllers lab-a --stop` first" in result.output


def test_missing_crds_say_make_tools(lab_dir, tmp_path, monkeypatch):
    _record(lab_dir, "kube-apiserver-lab-a")
    tools = tmp_path / "tools"
    (tools / "bin").mkdir(parents=True)
    (tools / "bin" / "external-secrets").write_text("#!/bin/sh\n")
    (tools / "bin" / "external-secrets").chmod(0o755)
    monkeypatch.setenv("VAULTFLEET_TOOLS", str(tools))
    result = _controllers("lab-a", "--kind", "eso")
    assert result.exit_code == 2
    assert f"no external-secrets CRDs in {tools}/crds/external-secrets: run `make tools`" in result.output
