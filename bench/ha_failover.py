"""Benchmark: a fleet on an HA Vault (`vaultfleet lab up --ha`: three raft nodes behind HAProxy)
losing its active node (SIGKILL). Per round, on the shared stack, lab-a and lab-b:

- election: the kill -> the balancer serving a new active node;
- kill, then at once a no-op `vaultfleet up --all`: the kill -> that up finished (ok or not);
- mid-run: lab-b onboarded (its mount, policies and stack: work in both stages), the active node
  killed 1 s into `vaultfleet up --all`: which stacks finished, and the kill -> the first
  successful `up --all` after it (the same run, or a rerun started once it failed);
- rejoin: the old node started and unsealed -> a standby again.

Baseline: the same no-op `up --all` with no fault. Uses a running HA lab, or starts one.

Usage: .venv/bin/python bench/ha_failover.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from _setup import CLI, lab_project, median, timed

from vaultfleet.lab import ha, vault
from vaultfleet.lab.record import http_ok


def up_all(env, project) -> tuple[float, list[dict]]:
    started = time.perf_counter()
    out = subprocess.run([CLI, "up", "--all", "--format", "json"], env=env, cwd=project, capture_output=True, text=True)
    return time.perf_counter() - started, json.loads(out.stdout or "[]")


def kill_leader(state, delay: float, election: list[float]) -> float:
    """Kill the active node after `delay` s; note the election's length in `election`. Returns when killed."""
    time.sleep(delay)
    old = ha.leader(state)
    killed = time.perf_counter()
    vault.stop_vault(state, old.name, kill=True)

    def watch() -> None:
        while not _serves(state):
            time.sleep(0.05)
        election.append(time.perf_counter() - killed)

    threading.Thread(target=watch, daemon=True).start()
    return killed


def _serves(state) -> bool:
    try:
        return http_ok(f"{state.vault_addr}/v1/sys/health") and ha.leader(state) is not None
    except Exception:  # noqa: BLE001 - no active node yet
        return False


def rejoin(state) -> float:
    started = time.perf_counter()
    for node in state.vault_nodes:
        if not any(p.name == node.name for p in state.processes):
            vault.start_vault(state, name=node.name)  # waits until it answers as a standby
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with lab_project(high_availability=True) as (state, env, project):
        stacks = project / "stacks"
        held_back = project / "lab-b.yaml"
        up_all(env, project)  # converged before the first round
        figures: dict[str, list[float]] = {k: [] for k in ("noop", "election", "noop_after_kill", "mid_run", "rejoin")}
        finished: list[str] = []
        for _ in range(args.rounds):
            figures["noop"].append(up_all(env, project)[0])

            election: list[float] = []
            killed = kill_leader(state, 0, election)
            seconds, results = up_all(env, project)
            figures["noop_after_kill"].append(time.perf_counter() - killed)
            finished.append("no-op: " + ", ".join(f"{r['stack']} {'ok' if r['ok'] else 'failed'}" for r in results))
            figures["rejoin"].append(rejoin(state))

            # lab-b offboarded (untimed), then onboarded by the run the kill interrupts.
            (stacks / "Pulumi.lab-b.yaml").rename(held_back)
            timed([CLI, "up", "vault", "--allow-dangerous", "vault"], env, project)  # lab-b's mount goes
            subprocess.run([CLI, "destroy", "lab-b", "--yes"], env=env, cwd=project, capture_output=True)
            held_back.rename(stacks / "Pulumi.lab-b.yaml")
            with ThreadPoolExecutor(1) as pool:
                run = pool.submit(up_all, env, project)
                killed = kill_leader(state, 1.0, election)
                _, results = run.result()
            finished.append("mid-run: " + ", ".join(f"{r['stack']} {'ok' if r['ok'] else 'failed'}" for r in results))
            while not all(r["ok"] for r in results):
                _, results = up_all(env, project)
            figures["mid_run"].append(time.perf_counter() - killed)
            figures["election"] += election
            figures["rejoin"].append(rejoin(state))

        print(f"{state.server.product} {state.vault_version}, 3 nodes behind HAProxy; {args.rounds} rounds, medians")
        print(f"  no-op up --all, no fault:                         {median(figures['noop']):6.1f} s")
        print(f"  election (kill -> balancer serves a new leader):  {median(figures['election']):6.1f} s")
        print(f"  kill -> no-op up --all started at once, finished: {median(figures['noop_after_kill']):6.1f} s")
        print(f"  kill 1 s into up --all -> first successful up:    {median(figures['mid_run']):6.1f} s")
        print(f"  old node restarted -> standby again:              {median(figures['rejoin']):6.1f} s")
        for line in finished:
            print(f"  {line}")


if __name__ == "__main__":
    main()
