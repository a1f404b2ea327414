"""The fleet on a highly available Vault (three raft nodes behind HAProxy, vaultfleet/lab/ha.py): the
leader killed in the middle of `vaultfleet up --all`, a standby stopped and then sealed, the old
leader rejoining, and a workload's token from before the failover.

The HA Vault is this module's own (a lab record in a temporary directory, beside the session's lab
on ports of its own); the stacks run on the session lab's clusters lab-a and lab-b and its Pulumi
backend, and are destroyed at the end like every module's.
"""

from __future__ import annotations

import json
import re
import threading
import time

import hvac
import pytest
from typer.testing import CliRunner

from tests.harness import copy_project, destroy_stacks, login, plain_stack_export, up_stacks, use_lab_for_cli
from vaultfleet.cli import app
from vaultfleet.fleet.health import token_problem, vault_problem
from vaultfleet.fleet.runner import StackResult, run
from vaultfleet.lab import ha, processes, vault
from vaultfleet.lab import lab as lab_module
from vaultfleet.lab.files import private_dir
from vaultfleet.lab.record import VAULT_PORT, LabState, VaultNode
from vaultfleet.stackfile import Project

# Elections, raft, joining, standbys refusing to seal, forwarding: all the server's own code.
pytestmark = [pytest.mark.lab, pytest.mark.server]
runner = CliRunner()
PORT = VAULT_PORT + 40  # the balancer; nodes at + 10, 20, 30 (and + 1 each for cluster traffic)


@pytest.fixture(scope="module")
def ha_vault(lab, tmp_path_factory):
    directory = tmp_path_factory.mktemp("ha") / "lab"
    private_dir(directory)
    state = LabState(
        directory=directory,
        vault_addr=f"http://127.0.0.1:{PORT}",
        vault_server=lab.vault_server,
        vault_cli=lab.vault_cli,
        clusters=[],
        vault_nodes=[VaultNode(f"vault-{i}", PORT + 10 * i) for i in (1, 2, 3)],
    )
    state.save()
    try:
        vault.start(state, state.vault_cli, echo=None)
        yield state
    finally:
        lab_module.down(directory, echo=None)


@pytest.fixture(scope="module")
def ha_env(lab_env, ha_vault) -> dict[str, str]:
    return {**lab_env, "VAULT_ADDR": ha_vault.vault_addr, "VAULT_TOKEN": ha_vault.vault_token()}


@pytest.fixture(scope="module")
def project(ha_vault, ha_env, tmp_path_factory):
    """The shared stack and lab-a up on the HA Vault; lab-b's stack file is held back for a run to add."""
    project = copy_project(tmp_path_factory.mktemp("ha-project"), vault_address=ha_vault.vault_addr)
    lab_b = project / "stacks/Pulumi.lab-b.yaml"
    lab_b.rename(project / "lab-b.yaml")
    up_stacks(project, ha_env, ["vault", "lab-a"])
    yield project
    _all_nodes_back(ha_vault)
    destroy_stacks(project, ha_env, ["vault", "lab-a", "lab-b"])


@pytest.fixture()
def ha_cli(monkeypatch, project, ha_env) -> None:
    use_lab_for_cli(monkeypatch, project, ha_env)


def _all_nodes_back(state: LabState) -> None:
    """Whatever a failed test left down or sealed: every node running and unsealed, a leader elected."""
    for node in state.vault_nodes:
        if not any(p.name == node.name and processes.is_running(p) for p in state.processes):
            state.processes = [p for p in state.processes if p.name != node.name]
            state.save()
            vault.start_vault(state, name=node.name)
        vault.unseal_vault(state, node)
    ha.wait_for_leader(state)


def _objects_outside_state(project, env, root: hvac.Client, stacks: list[str]) -> set[str]:
    """Auth mounts, secrets mounts, policies and roles in Vault that no stack's state holds."""
    in_state = {
        r.get("id")
        for name in stacks
        for r in json.loads(plain_stack_export(project, name, env))["deployment"].get("resources", [])
    }
    builtin = {"token", "sys", "cubbyhole", "identity", "default", "root"}
    auth = {p.rstrip("/") for p in root.sys.list_auth_methods()["data"]}
    objects = auth | {p.rstrip("/") for p in root.sys.list_mounted_secrets_engines()["data"]}
    objects |= set(root.sys.list_policies()["data"]["policies"])
    for mount in (m for m in auth if m.startswith("k8s-")):
        objects |= {f"auth/{mount}/role/{r}" for r in root.auth.kubernetes.list_roles(mount_point=mount)["keys"]}
    return objects - builtin - in_state


def test_leader_killed_mid_up_all_then_a_rerun_converges_and_the_old_leader_rejoins(
    lab, ha_vault, ha_env, project, ha_cli
):
    state = ha_vault
    root = hvac.Client(url=state.vault_addr, token=state.vault_token())
    workload = login(lab, "lab-a", vault_addr=state.vault_addr)  # app/app as role app, through the balancer
    before = workload.auth.token.lookup_self()["data"]

    # lab-b onboarded: the run has work in the shared stage (lab-b's mount, policies) and after it.
    # The fleet's runner as `vaultfleet up --all` calls it, in a thread: its callbacks say when each
    # stack's run started and ended, to hold against the moment of the kill.
    (project / "lab-b.yaml").rename(project / "stacks/Pulumi.lab-b.yaml")
    fleet = Project(project)
    names = fleet.stack_names()
    assert sorted(names) == ["lab-a", "lab-b", "vault"]
    started: dict[str, float] = {}
    ended: dict[str, float] = {}
    results: list[StackResult] = []
    crashed: list[BaseException] = []

    def up_all() -> None:
        try:
            results.extend(
                run(
                    fleet,
                    names,
                    "up",
                    env=ha_env,
                    on_start=lambda name: started.setdefault(name, time.monotonic()),
                    on_result=lambda r: ended.setdefault(r.stack, time.monotonic()),
                )
            )
        except BaseException as exc:  # noqa: BLE001 - reported by the test's thread below
            crashed.append(exc)

    fleet_run = threading.Thread(target=up_all, name="up --all", daemon=True)
    fleet_run.start()
    try:
        # The leader goes (SIGKILL, a machine lost) as soon as the shared stack has made lab-b's mount.
        processes.wait_until(lambda: "k8s-lab-b/" in root.sys.list_auth_methods()["data"], 120, "lab-b's mount")
        old = ha.leader(state)
        kill_began = time.monotonic()
        vault.stop_vault(state, old.name, kill=True)
        kill_done = time.monotonic()
        alive_at_kill = fleet_run.is_alive()
    finally:
        fleet_run.join(600)  # before anything else (or the teardown) runs an engine on these stacks
    assert not fleet_run.is_alive() and not crashed, crashed

    # The run was under way when the leader went: the fleet still running after the kill, and at
    # least one stack's run overlapping it (started before the leader was gone, not finished before
    # the kill began). So the run did not all succeed before the kill could make a difference: that
    # stack ran across the failover, whatever its result.
    across = [s for s in started if started[s] < kill_done and ended[s] > kill_began]
    timeline = {s: (round(started[s] - kill_began, 2), round(ended[s] - kill_began, 2)) for s in started}
    assert alive_at_kill and across, f"no stack was running at the kill: (start, end) seconds from it: {timeline}"

    # Each stack finished, or failed with a first line that names the cause (a cluster stack that
    # waited for a failed shared stack names the shared stack's).
    cause = re.compile(
        rf"^(not run: waits for vault, which (failed: |was not run: ))?(not run: )?Vault at {state.vault_addr} "
        "(was unavailable during the run|answered HTTP 50)"
    )
    assert {r.stack for r in results} == set(names), results
    for r in results:
        assert r.ok or cause.match(r.error or ""), r

    new = ha.wait_for_leader(state)
    assert new != old
    rerun = runner.invoke(app, ["up", "--all", "--format", "json"])
    assert rerun.exit_code == 0, rerun.output
    assert all(r["ok"] for r in json.loads(rerun.stdout)), rerun.stdout
    outside = _objects_outside_state(project, ha_env, root, ["vault", "lab-a", "lab-b"])
    assert not outside, f"Vault objects no stack's state holds: {outside}"

    # The workload's token outlived the leader it was issued by: the same token, its policies, a
    # lease that still renews (role app: ttl 1h, max 4h).
    after = workload.auth.token.lookup_self()["data"]
    assert (after["accessor"], after["policies"]) == (before["accessor"], before["policies"])
    assert workload.auth.token.renew_self(increment="1h")["auth"]["lease_duration"] == 3600

    # The old leader comes back on its data and follows the new one: nothing diverges.
    vault.start_vault(state, name=old.name)
    assert ha.leader(state) == new
    assert all(ha.voters(state, new).values())
    converged = runner.invoke(app, ["preview", "--all", "--refresh", "--expect-no-changes"])
    assert converged.exit_code == 0, converged.output
    for stack in ("lab-a", "lab-b"):
        verified = runner.invoke(app, ["verify", stack])
        assert verified.exit_code == 0, verified.output


def test_a_standby_stopped_then_sealed_leaves_runs_and_logins_working(lab, ha_vault, project, ha_cli):
    state = ha_vault
    standby = ha.standbys(state)[0]

    def fleet_works() -> None:
        result = runner.invoke(app, ["up", "lab-a", "--format", "json"])
        assert result.exit_code == 0, result.output
        workload = login(lab, "lab-a", vault_addr=state.vault_addr)  # app/app as role app, through the balancer
        assert workload.auth.token.lookup_self()["data"]["meta"]["service_account_name"] == "app"

    vault.stop_vault(state, standby.name)
    fleet_works()
    vault.start_vault(state, name=standby.name, unseal=False)  # back on its data, sealed
    assert "is sealed" in (vault_problem(standby.addr) or "")
    fleet_works()

    vault.unseal_vault(state, standby)
    processes.wait_until(lambda: vault_problem(standby.addr) is None, 60, "the standby unsealed")
    # A standby is no problem to the health checks, asked of it directly (it forwards to the leader).
    assert ha.leader(state) != standby
    assert token_problem(standby.addr, state.vault_token()) is None
