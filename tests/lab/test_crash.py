"""An engine killed (SIGKILL) in the middle of `up`, at several points; `vaultfleet up` heals and converges.

Each case runs a plain `pulumi up` in its own process group and kills the engine and its plugins at
once (a CI runner or machine lost) at a chosen point: of a fresh cluster stack (lab-a: its reviewer,
mount config and roles), or of the shared stack bringing a new cluster's mount and policies
(lab-c's, from a stack file added for the case):

- "kill": when the engine announces the create of a resource (the object may or may not exist);
- "held": while Vault has made the object but its answer is held back by a loopback proxy, so the
  checkpoint still says "creating" for an object that exists: the case a plain rerun gets wrong
  ("path is already in use", or an orphan no stack owns).

Afterwards `vaultfleet up` must succeed, leave no pending operation and no change, and every Vault
object the stack makes for the cluster must be in the stack's state.
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

from tests.harness import copy_project, destroy_stacks, root_client, up_stacks
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
    ("lab-a", "kubernetes:core/v1:ServiceAccount", "kill", None),
    ("vault", "vault:index/authBackend:AuthBackend", "held", "/v1/sys/auth/k8s-lab-c"),
    ("vault", "vault:index/policy:Policy", "held", "/v1/sys/policies/acl/k8s-lab-c-"),
    ("lab-a", "vault:kubernetes/authBackendConfig:AuthBackendConfig", "held", "/v1/auth/k8s-lab-a/config"),
    ("lab-a", "vault:kubernetes/authBackendRole:AuthBackendRole", "held", "/v1/auth/k8s-lab-a/role/"),
    ("lab-a", "vault:kubernetes/authBackendRole:AuthBackendRole", "kill", None),
]
# The cluster whose objects a stack's case makes: lab-a's stack, or the shared stack for lab-c.
CLUSTER = {"lab-a": "lab-a", "vault": "lab-c"}


@pytest.fixture(scope="module")
def proxy(lab):
    proxy = HoldingProxy(lab.vault_addr)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def project(lab, lab_env, proxy, tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("crash"), vault_address=proxy.url)
    up_stacks(project, lab_env, ["vault"])
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
    stack: str,
    resource_type: str,
    how: str,
    held_path: str | None,
    tmp: Path,
) -> None:
    events, output = tmp / "events.jsonl", tmp / "engine.log"
    proxy.reset(lambda method, path: how == "held" and method in ("PUT", "POST") and path.startswith(held_path))
    select_stack(stack, project, env)  # exists before the plain CLI runs it
    with open(output, "wb") as log:
        engine = subprocess.Popen(
            [
                pulumi_command().command,
                "up",
                "--yes",
                "--non-interactive",
                "--skip-preview",
                "-s",
                stack,
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


def _pending_in_checkpoint(lab, stack: str):
    """Read from the checkpoint file itself: `pulumi stack export` may not read the stack yet (a
    kill can truncate its metadata sidecar, which the next `vaultfleet up` repairs)."""
    checkpoint = Path(lab.backend_url.removeprefix("file://")) / f".pulumi/stacks/vaultfleet/{stack}.json"
    return pending_operations({"deployment": json.loads(checkpoint.read_text())["checkpoint"]["latest"]})


def _fleet_objects(vault: hvac.Client, stack: str) -> set[str]:
    """Every Vault object the stack makes for its case's cluster: the shared stack, the cluster's
    mount and policies; a cluster's stack, its mount's roles (its config, see _config)."""
    cluster = CLUSTER[stack]
    if stack == "vault":
        objects = {p for p in vault.sys.list_policies()["data"]["policies"] if p.startswith(f"k8s-{cluster}-")}
        if f"k8s-{cluster}/" in vault.sys.list_auth_methods()["data"]:
            objects.add(f"k8s-{cluster}")
        return objects
    try:
        roles = vault.auth.kubernetes.list_roles(mount_point=f"k8s-{cluster}")["keys"]
    except hvac.exceptions.InvalidPath:
        roles = []
    return {f"auth/k8s-{cluster}/role/{r}" for r in roles}


def _add_cluster_c(project: Path, present: bool) -> None:
    """lab-c's stack file (lab-a's, on lab-c's context): the shared stack makes its mount and policies."""
    path = project / "stacks/Pulumi.lab-c.yaml"
    if present:
        path.write_text(
            (project / "stacks/Pulumi.lab-a.yaml").read_text().replace("kubeContext: lab-a", "kubeContext: lab-c")
        )
    else:
        path.unlink(missing_ok=True)


@pytest.mark.parametrize(
    "stack, resource_type, how, held_path",
    [
        pytest.param(
            stack,
            t,
            how,
            held,
            id=f"{how}-at-{t.rsplit(':', 1)[-1]}",
            # A `kill` stops the engine itself, wherever it is: what heals it is the engine's state
            # (stale lock, pending operations), the same on either server; a `held` write is made in
            # Vault and then lost by the engine, so the server's answer to the adoption matters.
            marks=pytest.mark.server if how == "held" and not t.startswith("kubernetes:") else (),
        )
        for stack, t, how, held in KILL_POINTS
    ],
)
def test_up_killed_midway_is_healed_by_the_next_up(
    lab, lab_env, project, proxy, tmp_path, stack, resource_type, how, held_path
):
    run_cli = lambda args: pulumi_command().run([*args, "--stack", stack], str(project), lab_env)  # noqa: E731
    vault = root_client(lab)
    config_path = "auth/k8s-lab-a/config"
    if resource_type.endswith("AuthBackendConfig"):
        # The config outlives a destroy (Vault cannot delete it): mark it, to see the held write land.
        vault.write(
            config_path,
            kubernetes_host="https://marker.invalid:1",
            disable_iss_validation=True,
            kubernetes_ca_cert=lab.pki("lab-a").ca_cert.read_text(),
        )
    if stack == "vault":
        _add_cluster_c(project, present=True)
    _kill_during_up(project, lab_env, proxy, stack, resource_type, how, held_path, tmp_path)
    if how == "held":  # made in Vault, "creating" in the checkpoint
        left = _pending_in_checkpoint(lab, stack)
        assert any(op.type == "creating" and op.resource_type == resource_type for op in left), left
        if resource_type.endswith("AuthBackendConfig"):
            assert vault.read(config_path)["data"]["kubernetes_host"] == lab.clusters[0].server
        else:
            made = held_path.removeprefix("/v1/").removeprefix("sys/auth/").removeprefix("sys/policies/acl/")
            assert any(o.startswith(made) for o in _fleet_objects(vault, stack)), _fleet_objects(vault, stack)

    result = runner.invoke(app, ["up", stack, "--format", "json"])
    assert result.exit_code == 0, result.output
    [summary] = json.loads(result.stdout)
    assert summary["ok"] and "recovered from an interrupted run" in (summary["recovered"] or ""), summary
    assert "stale lock" in summary["recovered"], summary
    if how == "held":
        assert "adopted objects an interrupted create had made" in summary["recovered"], summary

    after = plain_export(run_cli)
    assert pending_operations(after) == []
    in_state = {r.get("id") for r in after["deployment"]["resources"]}
    objects = _fleet_objects(vault, stack) | ({config_path} if stack == "lab-a" else set())
    orphans = objects - in_state
    assert not orphans, f"Vault objects outside the stack's state: {orphans}"
    converged = runner.invoke(app, ["preview", stack, "--refresh", "--expect-no-changes"])
    assert converged.exit_code == 0, converged.output

    # The next case starts from nothing again.
    if stack == "vault":
        _add_cluster_c(project, present=False)  # the shared stack removes lab-c's mount and policies
        removed = runner.invoke(app, ["up", "vault", "--allow-dangerous", "vault"])  # the mount's delete
        assert removed.exit_code == 0, removed.output
    else:
        destroyed = runner.invoke(app, ["destroy", "lab-a", "--yes"])
        assert destroyed.exit_code == 0, destroyed.output
    assert _fleet_objects(vault, stack) == set()
