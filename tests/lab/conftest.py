"""Lab fixtures: one lab for the whole session (reused if one is already running).

The lab runs the server $VAULTFLEET_LAB_SERVER names (openbao by default, or vault): `make test`
runs the lab tests once per server, each session with its own lab. Fixtures only: the lab modules'
helpers (project copies on the lab, engine runs, logins, tokens, teardown, `Fleet`) are in
tests/harness/.
"""

from __future__ import annotations

import os

import pytest

from tests.harness import LAB_CLUSTERS, use_lab_for_cli
from vaultfleet.lab import lab as lab_module
from vaultfleet.lab import processes, servers
from vaultfleet.lab.record import LabState


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


@pytest.fixture()
def lab_cli(monkeypatch, project, lab_env) -> None:
    """In-process CLI calls (CliRunner) run on the lab and on the module's `project` fixture:
    `pytestmark = [..., pytest.mark.usefixtures("lab_cli")]` in a module that defines `project`."""
    use_lab_for_cli(monkeypatch, project, lab_env)
