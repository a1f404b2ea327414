"""Lab fixtures: one lab for the whole session (reused if one is already running).

The lab runs the server $VAULTFLEET_LAB_SERVER names (openbao by default, or vault): `make test`
runs the lab tests once per server, each session with its own lab.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from vaultfleet.lab import lab as lab_module
from vaultfleet.lab import processes, servers

REPO = Path(__file__).resolve().parents[2]


# Six clusters: the fleet tests bring six cluster stacks up in parallel and check every pair.
LAB_CLUSTERS = 6


@pytest.fixture(scope="session")
def lab_server() -> servers.ServerKind:
    """The server this session tests against ($VAULTFLEET_LAB_SERVER, default openbao)."""
    return servers.from_env()


@pytest.fixture(scope="session")
def lab(lab_server):
    state = lab_module.LabState.load()
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
    dest = parent / "project"
    dest.mkdir()
    shutil.copy(REPO / "__main__.py", dest / "__main__.py")
    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
    project["config"]["vaultfleet:vaultAddress"]["value"] = vault_address or f"http://127.0.0.1:{lab_module.VAULT_PORT}"
    (dest / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
    for name in ["components", "policies", "stacks", "vaultfleet"]:
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    (dest / ".venv").symlink_to(REPO / ".venv")
    return dest


def use_lab_for_cli(monkeypatch, project: Path, lab_env: dict[str, str]) -> None:
    """Point in-process CLI calls (CliRunner) at the lab and at a project copy."""
    for key, value in lab_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("VAULTFLEET_PROJECT", str(project))
