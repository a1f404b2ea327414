"""Running the Vault Agent built into the lab's server binary, as a pod's agent would run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def run_agent(binary: str, config: dict, workdir: Path, timeout: float = 60) -> tuple[int | None, str]:
    """Run `<binary> agent -config=... -exit-after-auth` once: log in, render every template, exit.

    `binary` is the lab's own server binary (`LabState.vault_cli`: `bao` or `vault`), so the agent
    is the one of the server under test. Returns the exit code (None if it had to be killed) and its
    log. No VAULT_TOKEN or VAULT_ADDR of ours reaches it: the agent gets everything from its config
    and the login.
    """
    config_file = workdir / "agent.json"
    config_file.write_text(json.dumps(config))
    log_file = workdir / "agent.log"
    with log_file.open("w") as log:
        agent = subprocess.Popen(
            [binary, "agent", f"-config={config_file}", "-exit-after-auth"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={"PATH": "/usr/bin:/bin", "HOME": str(workdir)},
        )
        try:
            code = agent.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            agent.kill()  # by the PID we started
            agent.wait()
            code = None
    return code, log_file.read_text()
