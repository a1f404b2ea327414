"""Lab fixtures: one lab for the whole session (reused if one is already running).

The lab runs the server $VAULTFLEET_LAB_SERVER names (openbao by default, or vault): `make test`
runs the lab tests once per server, each session with its own lab.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import hvac
import pytest
import yaml

from tests.conftest import REPO, copy_project_files
from tests.lab import k8s
from vaultfleet.fleet.engine import pulumi_command
from vaultfleet.fleet.runner import run
from vaultfleet.lab import lab as lab_module
from vaultfleet.lab import processes, servers
from vaultfleet.lab.record import VAULT_PORT, LabState

# Six clusters: the fleet tests bring six cluster stacks up in parallel and check every pair.
LAB_CLUSTERS = 6


@pytest.fixture(scope="session")
def lab_server() -> servers.ServerKind:
    """The server this session tests against ($VAULTFLEET_LAB_SERVER, default openbao)."""
    return servers.from_env()


@pytest.fixture(scope="session")
def lab(lab_server):
    state = LabState.load()
    started_here = False
    if state is None or not all(processes.is_running(p) for p in state.processes):
        state = lab_module.up(LAB_CLUSTERS, echo=print, server=lab_server)
        started_here = True
    elif state.vault_server != lab_server.name:
        # Reusing it would test the other server while reporting this one.
        pytest.exit(
            f"the running lab in {state.directory} serves {state.server.product}, this session tests "
            f"{lab_server.product} (${servers.ENV_VAR}={lab_server.name}): `vaultfleet lab down` first",
            returncode=2,
        )
    elif len(state.clusters) < LAB_CLUSTERS:
        pytest.exit(
            f"the running lab has {len(state.clusters)} clusters, the lab tests need {LAB_CLUSTERS}: "
            f"`vaultfleet lab down && vaultfleet lab up --clusters {LAB_CLUSTERS}`",
            returncode=2,
        )
    yield state
    if started_here:
        lab_module.down(echo=None)


@pytest.fixture(scope="session")
def lab_env(lab) -> dict[str, str]:
    """Environment for the engine and its plugins: the lab's, with the root token, offline."""
    env = {
        **lab.env(),
        "VAULT_TOKEN": lab.vault_token(),
        "HOME": os.environ.get("HOME", "/root"),
        # Any HTTP(S) client that tried to leave the machine would hit this closed port;
        # loopback stays direct. The lab tests pass only if nothing needed the network.
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    return env


def copy_project(parent: Path, vault_address: str | None = None) -> Path:
    """A copy of the Pulumi project, so tests can edit stack files without touching the repo.

    Its fleet Vault address is the lab's, so a lab on shifted ports ($VAULTFLEET_LAB_PORT_OFFSET,
    e.g. one per developer on a shared machine) is used rather than the default lab's Vault.
    """
    dest = copy_project_files(parent, program=True)
    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
    project["config"]["vaultfleet:vaultAddress"]["value"] = vault_address or f"http://127.0.0.1:{VAULT_PORT}"
    (dest / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
    (dest / ".venv").symlink_to(REPO / ".venv")
    return dest


def use_lab_for_cli(monkeypatch, project: Path, lab_env: dict[str, str]) -> None:
    """Point in-process CLI calls (CliRunner) at the lab and at a project copy."""
    for key, value in lab_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("VAULTFLEET_PROJECT", str(project))


@pytest.fixture()
def lab_cli(monkeypatch, project, lab_env) -> None:
    """In-process CLI calls (CliRunner) run on the lab and on the module's `project` fixture:
    `pytestmark = [..., pytest.mark.usefixtures("lab_cli")]` in a module that defines `project`."""
    use_lab_for_cli(monkeypatch, project, lab_env)


def up_stacks(project: Path, env: dict[str, str], names: Iterable[str], parallel: int = 4) -> None:
    """Setup: bring `names` up as `vaultfleet up` does (the shared stack first), asserting each did.
    Cheaper than the Automation API's `Stack.up()`, whose `stack select`, outputs and history
    runs around the engine cost about 1.5 s per stack (vaultfleet/fleet/engine.py)."""
    from vaultfleet.stackfile import Project

    failed = {
        r.stack: r.error for r in run(Project(project), list(names), "up", env=env, parallel=parallel) if not r.ok
    }
    assert not failed, f"setup could not bring up {failed}"


def destroy_stacks(project: Path, env: dict[str, str], names: Iterable[str], parallel: int = 6) -> None:
    """Teardown: destroy those of `names` that exist in the lab's backend, as `vaultfleet destroy`
    does (cluster stacks in parallel, then the shared stack; pending operations of a killed run
    healed first), and remove them, so the next module starts from an empty backend and Vault."""
    from pulumi import automation as auto

    from vaultfleet.stackfile import Project

    workspace = auto.LocalWorkspace(work_dir=str(project), env_vars=env, pulumi_command=pulumi_command())
    existing = {s.name: s.resource_count for s in workspace.list_stacks()}
    names = [n for n in names if n in existing]
    # One a test destroyed already (0 resources) is only removed: no engine run.
    busy = [n for n in names if existing[n] != 0]
    failed = {r.stack: r.error for r in run(Project(project), busy, "destroy", env=env, parallel=parallel) if not r.ok}
    for name in names:
        if name not in failed:
            workspace.remove_stack(name)
    assert not failed, f"teardown could not destroy {failed}"


def root_client(lab) -> hvac.Client:
    """A client of the lab's Vault with the root token."""
    return hvac.Client(url=lab.vault_addr, token=lab.vault_token())


def enable_transit(root: hvac.Client) -> None:
    """The fleet admin's one-time step for Transit state keys: the mount at transit/ (the one Pulumi's
    hashivault:// provider uses). Left in place: later modules on the same lab find it."""
    if "transit/" not in root.sys.list_mounted_secrets_engines()["data"]:
        root.sys.enable_secrets_engine("transit", path="transit")


@contextmanager
def vault_token(root: hvac.Client, policies: list[str], ttl: str, **options) -> Iterator[str]:
    """A token with `policies` (created by `root`), revoked when the block ends."""
    token = root.auth.token.create(policies=policies, ttl=ttl, **options)["auth"]["client_token"]
    try:
        yield token
    finally:
        root.auth.token.revoke(token)


def login(
    lab,
    cluster: str,
    role: str,
    namespace: str,
    account: str,
    audience: str | None = "vault",
    vault_addr: str | None = None,
) -> hvac.Client:
    """A client logged in as ServiceAccount namespace/account of `cluster` (created if missing) at
    the cluster's mount k8s-<cluster>, with a TokenRequest token for `audience`, under `role`; at the
    lab's Vault, or at `vault_addr` (another Vault on the lab's clusters)."""
    api = k8s.api_client(str(lab.kubeconfig), cluster)
    k8s.ensure_service_account(api, namespace, account)
    jwt = k8s.request_token(api, namespace, account, audience=audience)
    client = hvac.Client(url=vault_addr or lab.vault_addr)
    client.auth.kubernetes.login(role, jwt, mount_point=f"k8s-{cluster}")
    return client


def plain_stack_export(project: Path, name: str, env: dict[str, str]) -> str:
    """What `pulumi stack export` prints (the Automation API's export_stack adds --show-secrets)."""
    out = pulumi_command().run(["stack", "export", "--stack", name], str(project), env)
    return out.stdout
