"""Running the Vault Agent built into the lab's server binary, as a pod's agent would run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from vaultfleet.lab.tools import find_tool


def agent_binary() -> str:
    """The binary whose `agent` subcommand the tests run (OpenBao's `bao agent`)."""
    return find_tool("bao")


def run_agent(config: dict, workdir: Path, timeout: float = 60) -> tuple[int | None, str]:
    """Run `agent -config=... -exit-after-auth` once: log in, render every template, exit.

    Returns the exit code (None if it had to be killed) and its log. No VAULT_TOKEN or VAULT_ADDR of
    ours reaches it: the agent gets everything from its config and the login.
    """
    config_file = workdir / "agent.json"
    config_file.write_text(json.dumps(config))
    log_file = workdir / "agent.log"
    with log_file.open("w") as log:
        agent = subprocess.Popen(
            [agent_binary(), "agent", f"-config={config_file}", "-exit-after-auth"],
            stdout=log, stderr=subprocess.STDOUT, env={"PATH": "/usr/bin:/bin", "HOME": str(workdir)},
        )
        try:
            code = agent.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            agent.kill()  # by the PID we started
            agent.wait()
            code = None
    return code, log_file.read_text()
