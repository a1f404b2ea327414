"""An engine killed (SIGKILL) in the middle of `up`, at several points; `vaultfleet up` heals and converges.

Each case runs a plain `pulumi up` of a fresh cluster stack in its own process group and kills the
engine and its plugins at once (a CI runner or machine lost) at a chosen point:

- "kill": when the engine announces the create of a resource (the object may or may not exist);
- "held": while Vault has made the object but its answer is held back by a loopback proxy, so the
  checkpoint still says "creating" for an object that exists: the case a plain rerun gets wrong
  ("path is already in use", or an orphan no stack owns).

Afterwards `vaultfleet up` must succeed, leave no pending operation and no change, and every Vault
object named for the cluster must be in the stack's state.
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

from tests.lab.conftest import copy_project, destroy_stacks, root_client
from tests.lab.holding_proxy import HoldingProxy
from vaultfleet.cli import app
from vaultfleet.fleet.engine import pulumi_command, select_stack
from vaultfleet.fleet.recovery import pending_operations, plain_export

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab_cli")]
runner = CliRunner()

# (resource type, how, the Vault write whose answer is held): a point in each phase of an up.
# `server` on the points at a Vault object: an interrupted Vault write, held or killed, is healed by
# reading what the server made (its paths and answers). Killed at the ServiceAccount, before any
# Vault write, the case is the engine's checkpoint, lock and kube-apiserver alone (server-independent).
KILL_POINTS = [
    ("kubernetes:core/v1:ServiceAccount", "kill", None),
    ("vault:index/authBackend:AuthBackend", "held", "/v1/sys/auth/k8s-lab-a"),
    ("vault:index/policy:Policy", "held", "/v1/sys/policies/acl/k8s-lab-a-"),
    ("vault:kubernetes/authBackendConfig:AuthBackendConfig", "held", "/v1/auth/k8s-lab-a/config"),
    ("vault:kubernetes/authBackendRole:AuthBackendRole", "held", "/v1/auth/k8s-lab-a/role/"),
    ("vault:kubernetes/authBackendRole:AuthBackendRole", "kill", None),
]


@pytest.fixture(scope="module")
def proxy(lab):
    proxy = HoldingProxy(lab.vault_addr)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def project(lab, lab_env, proxy, tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("crash"), vault_address=proxy.url)
    shared = select_stack("vault", project, lab_env)
    assert shared.up(color="never").summary.result == "succeeded"
    yield project
    proxy.reset(lambda method, path: False)
    destroy_stacks(project, lab_env, ["lab-a", "vault"])


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill_tree(pid: int) -> None:
    """SIGKILL the engine and everything under it, as a lost machine would. The language host puts
    the program in a process group of its own, so killing the engine's group is not enough; every
    process is frozen first so none is spawned or re-parented while the tree is collected."""
    tree = [pid, *_descendants(pid)]
    for p in tree:
        os.kill(p, signal.SIGSTOP)
    for p in {*tree, *_descendants(pid)}:
        os.kill(p, signal.SIGKILL)


def _kill_during_up(
    project: Path,
    env: dict[str, str],
    proxy: HoldingProxy,
    resource_type: str,
    how: str,
    held_path: str | None,
    tmp: Path,
) -> None:
    events, output = tmp / "events.jsonl", tmp / "engine.log"
    proxy.reset(lambda method, path: how == "held" and method in ("PUT", "POST") and path.startswith(held_path))
    select_stack("lab-a", project, env)  # exists (empty) before the plain CLI runs it
    with open(output, "wb") as log:
        engine = subprocess.Popen(
            [
                pulumi_command().command,
                "up",
                "--yes",
                "--non-interactive",
                "--skip-preview",
                "-s",
                "lab-a",
                "--event-log",
                str(events),
            ],
            cwd=project,
            env={**env, "PULUMI_DEBUG_COMMANDS": "true"},  # enables --event-log
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert engine.poll() is None, f"the up ended before the kill point:\n{output.read_text()[-3000:]}"
            if how == "held":
                if proxy.held.wait(0.02):
                    break
                continue
            lines = events.read_text().splitlines() if events.exists() else []
            pre = [json.loads(ln).get("resourcePreEvent") for ln in lines if '"resourcePreEvent"' in ln]
            if any(p and p["metadata"]["type"] == resource_type and p["metadata"]["op"] == "create" for p in pre):
                break
            time.sleep(0.02)
        else:
            raise AssertionError(f"never reached the kill point ({how} {resource_type}) within 180s")
    finally:
        if engine.poll() is None:
            _kill_tree(engine.pid)
        engine.wait()
        proxy.release()


def _pending_in_checkpoint(lab):
    """Read from the checkpoint file itself: `pulumi stack export` may not read the stack yet (a
    kill can truncate its metadata sidecar, which the next `vaultfleet up` repairs)."""
    checkpoint = Path(lab.backend_url.removeprefix("file://")) / ".pulumi/stacks/vaultfleet/lab-a.json"
    return pending_operations({"deployment": json.loads(checkpoint.read_text())["checkpoint"]["latest"]})


def _fleet_objects(vault: hvac.Client) -> set[str]:
    """Every Vault object named for the lab-a cluster: its mount, config, roles and policies."""
    objects = {p for p in vault.sys.list_policies()["data"]["policies"] if p.startswith("k8s-lab-a-")}
    if "k8s-lab-a/" in vault.sys.list_auth_methods()["data"]:
        objects.add("k8s-lab-a")
        if vault.read("auth/k8s-lab-a/config"):
            objects.add("auth/k8s-lab-a/config")
        try:
            roles = vault.auth.kubernetes.list_roles(mount_point="k8s-lab-a")["keys"]
        except hvac.exceptions.InvalidPath:
            roles = []
        objects |= {f"auth/k8s-lab-a/role/{r}" for r in roles}
    return objects


@pytest.mark.parametrize(
    "resource_type, how, held_path",
    [
        pytest.param(
            t,
            how,
            held,
            id=f"{how}-at-{t.rsplit(':', 1)[-1]}",
            marks=() if t.startswith("kubernetes:") else pytest.mark.server,
        )
        for t, how, held in KILL_POINTS
    ],
)
def test_up_killed_midway_is_healed_by_the_next_up(
    lab, lab_env, project, proxy, tmp_path, resource_type, how, held_path
):
    run_cli = lambda args: pulumi_command().run([*args, "--stack", "lab-a"], str(project), lab_env)  # noqa: E731
    vault = root_client(lab)
    _kill_during_up(project, lab_env, proxy, resource_type, how, held_path, tmp_path)
    if how == "held":  # made in Vault, "creating" in the checkpoint
        left = _pending_in_checkpoint(lab)
        assert any(op.type == "creating" and op.resource_type == resource_type for op in left), left
        assert any(
            o.startswith(held_path.removeprefix("/v1/").removeprefix("sys/auth/").removeprefix("sys/policies/acl/"))
            for o in _fleet_objects(vault)
        ), _fleet_objects(vault)

    result = runner.invoke(app, ["up", "lab-a", "--format", "json"])
    assert result.exit_code == 0, result.output
    [summary] = json.loads(result.stdout)
    assert summary["ok"] and "recovered from an interrupted run" in (summary["recovered"] or ""), summary
    assert "stale lock" in summary["recovered"], summary
    if how == "held":
        assert "adopted objects an interrupted create had made" in summary["recovered"], summary

    after = plain_export(run_cli)
    assert pending_operations(after) == []
    in_state = {r.get("id") for r in after["deployment"]["resources"]}
    orphans = _fleet_objects(vault) - in_state
    assert not orphans, f"Vault objects outside the stack's state: {orphans}"
    converged = runner.invoke(app, ["preview", "lab-a", "--refresh", "--expect-no-changes"])
    assert converged.exit_code == 0, converged.output

    # The next case starts from nothing again.
    destroyed = runner.invoke(app, ["destroy", "lab-a", "--yes"])
    assert destroyed.exit_code == 0, destroyed.output
    assert _fleet_objects(vault) == set()
