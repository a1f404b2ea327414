"""Benchmark: `vaultfleet preview --all` against a serial loop of plain `pulumi preview`, on the lab.

Also times `vaultfleet --help` and `vaultfleet validate`. Prints figures; asserts nothing.
Usage: .venv/bin/python bench/fleet_preview.py [--rounds N]   (starts the lab if none is running)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.lab.conftest import copy_project  # noqa: E402 - the lab tests' scratch copy of the project
from vaultfleet.fleet import run  # noqa: E402
from vaultfleet.lab import lab, processes  # noqa: E402

STACKS = ["vault", "lab-a", "lab-b"]


def timed(argv, env, cwd) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds

    state = lab.LabState.load()
    started_lab = state is None or not all(processes.is_running(p) for p in state.processes)
    if started_lab:
        state = lab.up(2, echo=None)
    env = {**os.environ, **state.env(), "VAULT_TOKEN": state.vault_token()}
    project = copy_project(Path(tempfile.mkdtemp()))
    env["VAULTFLEET_PROJECT"] = str(project)
    cli = str(REPO / ".venv/bin/vaultfleet")
    try:
        setup = run(project, STACKS, "up", env=env)
        assert all(r.ok for r in setup), [r.error for r in setup]
        serial, fleet = [], []
        for _ in range(rounds):
            serial.append(sum(timed(["pulumi", "preview", "-s", s, "--non-interactive"], env, project) for s in STACKS))
            fleet.append(timed([cli, "preview", "--all"], env, project))
        help_times = [timed([cli, "--help"], env, project) for _ in range(5)]
        validate_times = [timed([cli, "validate"], env, project) for _ in range(5)]
        s, f = statistics.median(serial), statistics.median(fleet)
        print(f"lab stacks: {len(STACKS)} ({', '.join(STACKS)}), rounds: {rounds}, cores: {os.cpu_count()}")
        print(f"serial plain `pulumi preview` loop : {s:6.2f} s (median)")
        print(f"`vaultfleet preview --all`         : {f:6.2f} s (median)   ratio serial/fleet = {s / f:.2f}x")
        print(f"`vaultfleet --help`                : {statistics.median(help_times):6.3f} s (median of 5)")
        print(f"`vaultfleet validate` ({len(STACKS)} stacks)  : {statistics.median(validate_times):6.3f} s (median of 5)")
    finally:
        run(project, STACKS, "destroy", env=env)
        for name in STACKS:
            subprocess.run(["pulumi", "stack", "rm", "-s", name, "--yes", "--force"], env=env, cwd=project, capture_output=True)
        if started_lab:
            lab.down(echo=None)


if __name__ == "__main__":
    main()
