"""An engine killed (SIGKILL) in the middle of `up`, at several points; `vaultfleet up` heals and converges.

Each case runs a plain `pulumi up` of a fresh cluster stack in its own process group, watches its
event log and, at the named step, kills the engine and its plugins at once (a CI runner or machine
lost). "freeze" cases first SIGSTOP the engine and wait until the provider has made the object, so
the object exists in Vault while the checkpoint still says "creating": the case a plain rerun gets
wrong ("path is already in use"). Afterwards: no pending operation, no change left, and every Vault
object named for the fleet is in the stack's state.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import hvac
import pytest
from typer.testing import CliRunner

from tests.lab.conftest import copy_project, use_lab_for_cli
from vaultfleet.automation import pulumi_command, select_stack
from vaultfleet.cli import app
from vaultfleet.recovery import pending_operations, plain_export

pytestmark = pytest.mark.lab
runner = CliRunner()

# (step whose creation triggers the kill, how): a point in each phase of a cluster's up.
KILL_POINTS = [
    ("kubernetes:core/v1:ServiceAccount", "kill"),
    ("vault:index/authBackend:AuthBackend", "freeze"),
    ("vault:index/policy:Policy", "freeze"),
    ("vault:kubernetes/authBackendConfig:AuthBackendConfig", "kill"),
    ("vault:kubernetes/authBackendRole:AuthBackendRole", "kill"),
]


@pytest.fixture(scope="module")
def project(lab, lab_env, tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("crash"))
    shared = select_stack("vault", project, lab_env)
    assert shared.up(color="never").summary.result == "succeeded"
    yield project
    for name in ("lab-a", "vault"):
        stack = select_stack(name, project, lab_env)
        stack.destroy(color="never")
        stack.workspace.remove_stack(name)


@pytest.fixture(autouse=True)
def environment(monkeypatch, project, lab_env):
    use_lab_for_cli(monkeypatch, project, lab_env)


def _exists(vault: hvac.Client, resource_type: str) -> bool:
    """Has the interrupted up made (at least one) object of this type for lab-a?"""
    if resource_type.endswith("AuthBackend"):
        return "k8s-lab-a/" in vault.sys.list_auth_methods()["data"]
    if resource_type.endswith("Policy"):
        return any(p.startswith("k8s-lab-a-") for p in vault.sys.list_policies()["data"]["policies"])
    raise AssertionError(resource_type)


def _kill_during_up(project: Path, env: dict[str, str], lab, resource_type: str, how: str, tmp: Path) -> None:
    events = tmp / "events.jsonl"
    pulumi = str(Path(pulumi_command().command))
    engine = subprocess.Popen(
        [pulumi, "up", "--yes", "--non-interactive", "--skip-preview", "-s", "lab-a", "--event-log", str(events)],
        cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: engine, language host and providers die together
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert engine.poll() is None, "the up finished before reaching the kill point"
            lines = events.read_text().splitlines() if events.exists() else []
            pre = [json.loads(ln).get("resourcePreEvent") for ln in lines if '"resourcePreEvent"' in ln]
            if any(p and p["metadata"]["type"] == resource_type and p["metadata"]["op"] == "create" for p in pre):
                break
            time.sleep(0.02)
        else:
            raise AssertionError(f"no create of {resource_type} within 180s")
        if how == "freeze":
            os.kill(engine.pid, signal.SIGSTOP)  # the provider goes on and makes the object
            vault = hvac.Client(url=lab.vault_addr, token=lab.vault_token())
            wait_until = time.monotonic() + 30
            while not _exists(vault, resource_type):
                assert time.monotonic() < wait_until, f"{resource_type} never appeared in Vault"
                time.sleep(0.05)
    finally:
        os.killpg(engine.pid, signal.SIGKILL)
        engine.wait()


def _fleet_objects(vault: hvac.Client) -> set[str]:
    """Every Vault object named for the lab-a cluster: its mount, config, roles and policies."""
    objects = {p for p in vault.sys.list_policies()["data"]["policies"] if p.startswith("k8s-lab-a-")}
    if "k8s-lab-a/" in vault.sys.list_auth_methods()["data"]:
        objects |= {"k8s-lab-a", "auth/k8s-lab-a/config"}
        try:
            roles = vault.auth.kubernetes.list_roles(mount_point="k8s-lab-a")["keys"]
        except hvac.exceptions.InvalidPath:
            roles = []
        objects |= {f"auth/k8s-lab-a/role/{r}" for r in roles}
    return objects


@pytest.mark.parametrize("resource_type, how", KILL_POINTS, ids=[f"{h}-at-{t.rsplit(':', 1)[-1]}" for t, h in KILL_POINTS])
def test_up_killed_midway_is_healed_by_the_next_up(lab, lab_env, project, tmp_path, resource_type, how):
    run_cli = lambda args: pulumi_command().run([*args, "--stack", "lab-a"], str(project), lab_env)  # noqa: E731
    _kill_during_up(project, lab_env, lab, resource_type, how, tmp_path)
    left = plain_export(run_cli)
    if how == "freeze":  # the case a plain rerun cannot handle: made in Vault, "creating" in state
        assert any(op.type == "creating" and op.resource_type == resource_type for op in pending_operations(left))

    result = runner.invoke(app, ["up", "lab-a", "--format", "json"])
    assert result.exit_code == 0, result.output
    [summary] = json.loads(result.stdout)
    assert summary["ok"] and "recovered from an interrupted run" in (summary["recovered"] or ""), summary
    assert "stale lock" in summary["recovered"]

    after = plain_export(run_cli)
    assert pending_operations(after) == []
    in_state = {r.get("id") for r in after["deployment"]["resources"]}
    vault = hvac.Client(url=lab.vault_addr, token=lab.vault_token())
    orphans = _fleet_objects(vault) - in_state
    assert not orphans, f"Vault objects outside the stack's state: {orphans}"
    converged = runner.invoke(app, ["preview", "lab-a", "--refresh", "--expect-no-changes"])
    assert converged.exit_code == 0, converged.output

    # Next case starts from nothing again.
    destroyed = runner.invoke(app, ["destroy", "lab-a", "--yes"])
    assert destroyed.exit_code == 0, destroyed.output
    assert _fleet_objects(vault) == set()
