"""Benchmark (#29): what one pull request costs in the per-cluster layout, at 20 and at 1,000 clusters.

Measured, per fleet size (`vaultfleet:clusterAccess: per-cluster`, the lab's file backend), each
figure --rounds times (default 5: the lab machine is noisy), printed as medians, with the ratio of
the largest size to the smallest:
1. one cluster's file changed (the same cluster at every size; role-0's ttl 1h <-> 2h, committed
   between rounds so that `--changed-since HEAD` sees exactly that file):
   `vaultfleet preview --changed-since HEAD`, then `vaultfleet up --changed-since HEAD` (each runs
   vault.X and X);
2. onboarding: a new stack file, `vaultfleet up --changed-since HEAD` (runs vault, vault.NEW, NEW).
   Offboarding afterwards (`destroy NEW vault.NEW`, the file removed, `up vault`) is not timed.
Figures: wall seconds, CPU seconds of the whole process tree (getrusage(RUSAGE_CHILDREN): the CLI,
engine, language hosts, programs, providers), peak memory (the largest resident sum over the process
tree, sampled every 0.2 s: bench/fleet_scale.py's `run`).

What the fleet is, and is not. Bringing 1,000 stacks up through the engine is out of reach of a
2-core machine, so a fleet of N here is:
- N cluster stack files in stacks/ (`write_cluster_stack`, 2 roles each, spread over the lab's 6
  clusters), committed in a git repository, and the shared stack `vault` up with all N (it names
  every cluster in its pipeline identities' policies);
- in Vault, N kubernetes auth mounts `k8s-scale-NNN` enabled directly through the API (unconfigured,
  no roles or policies), so Vault's mount table is the size an N-cluster fleet gives it;
- through the engine, only the clusters a measurement touches: the changed cluster's access stack and
  cluster stack (brought up untimed before its rounds) and each onboarded cluster.
So the figures include everything vaultfleet and the engine do that depends on the number of stack
files and of mounts, but not what N stacks' states in the backend would add (the file backend holds
a handful of stacks), nor N clusters' ServiceAccounts and roles. All of it is removed at the end.

Usage: .venv/bin/python bench/fleet_cost.py [--sizes 20,1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import hvac
from _setup import CLI, commit_project, forget_stacks, lab_project, median, only_stacks, write_cluster_stack
from fleet_scale import Sample, run

from tests.harness import set_cluster_access
from vaultfleet.fleet.changes import changed_since
from vaultfleet.stackfile import Project

FIGURES = ("preview, 1 file changed", "up, 1 file changed", "up, onboarding 1 cluster")


def commit(project: Path) -> None:
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "bench", "--allow-empty"], cwd=project, check=True)


def cli(env: dict[str, str], project: Path, *args: str) -> None:
    """An untimed vaultfleet command; fails with its output."""
    out = subprocess.run([CLI, *args], env=env, cwd=project, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"vaultfleet {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")


def expect_selection(project: Path, expected: list[str]) -> None:
    """What `--changed-since HEAD` will run must be exactly the stacks the figure is about."""
    got = changed_since(Project(project), "HEAD")
    if got != sorted(expected):
        raise RuntimeError(f"--changed-since HEAD selects {got}, expected {sorted(expected)}")


def enable_mounts(vault: hvac.Client, names: list[str]) -> list[str]:
    """kubernetes auth mounts k8s-<name> for the names that have none yet; the paths enabled."""
    existing = vault.sys.list_auth_methods()["data"]
    missing = [f"k8s-{n}" for n in names if f"k8s-{n}/" not in existing]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda path: vault.sys.enable_auth_method("kubernetes", path=path), missing))
    return missing


def fleet_of(project: Path, state, env, vault: hvac.Client, size: int, changed: str) -> list[str]:
    """N stack files, committed; the shared stack up; a mount per cluster but `changed` (its access
    stack makes its own). Returns the mounts it enabled."""
    only_stacks(project, ["vault"])
    names = [f"scale-{i:03d}" for i in range(size)]
    for i, name in enumerate(names):
        write_cluster_stack(project, name, state.clusters[i % len(state.clusters)].name)
    enabled = enable_mounts(vault, [n for n in names if n != changed])
    cli(env, project, "up", "vault")
    commit_project(project)
    return enabled


def one_file_changed(project: Path, env, name: str, rounds: int) -> tuple[list[Sample], list[Sample]]:
    cli(env, project, "up", f"vault.{name}", name)
    commit(project)  # the cluster stack's encryptionsalt
    path = project / "stacks" / f"Pulumi.{name}.yaml"
    previews, ups = [], []
    for r in range(rounds):
        old, new = ("ttl: 1h", "ttl: 2h") if r % 2 == 0 else ("ttl: 2h", "ttl: 1h")
        path.write_text(path.read_text().replace(old, new, 1))
        expect_selection(project, [f"vault.{name}", name])
        previews.append(run([CLI, "preview", "--changed-since", "HEAD"], env, project))
        ups.append(run([CLI, "up", "--changed-since", "HEAD"], env, project))
        commit(project)
    return previews, ups


def onboarding(project: Path, state, env, rounds: int, size: int) -> list[Sample]:
    ups = []
    for r in range(rounds):
        name = f"new-{size}-{secrets.token_hex(2)}-{r}"
        write_cluster_stack(project, name, state.clusters[r % len(state.clusters)].name)
        expect_selection(project, ["vault", f"vault.{name}", name])
        try:
            ups.append(run([CLI, "up", "--changed-since", "HEAD"], env, project))
        finally:  # offboarding, untimed (docs/fleet-layout.md)
            cli(env, project, "destroy", name, f"vault.{name}", "--yes")
            forget_stacks(project, env, [name, f"vault.{name}"])  # `pulumi stack rm` removes the file too
            (project / "stacks" / f"Pulumi.{name}.yaml").unlink(missing_ok=True)
            cli(env, project, "up", "vault")
    return ups


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="20,1000")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    started = time.perf_counter()
    with lab_project() as (state, env, project):
        set_cluster_access(project, "per-cluster")
        vault = hvac.Client(url=state.vault_addr, token=state.vault_token())
        enabled: list[str] = []
        results: dict[int, dict[str, list[Sample]]] = {}
        try:
            # The same cluster changes at every size (one of the smallest fleet's), so the sizes
            # differ in the fleet only, not in the cluster (lab context) the measured stacks run on.
            changed = f"scale-{min(sizes) // 2:03d}"
            for size in sizes:
                enabled += fleet_of(project, state, env, vault, size, changed)
                try:
                    previews, ups = one_file_changed(project, env, changed, args.rounds)
                    onboards = onboarding(project, state, env, args.rounds, size)
                finally:
                    cli(env, project, "destroy", changed, f"vault.{changed}", "--yes")
                    forget_stacks(project, env, [changed, f"vault.{changed}"])
                results[size] = dict(zip(FIGURES, (previews, ups, onboards), strict=True))
                print(f"{size} stack files: done after {time.perf_counter() - started:.0f} s", flush=True)
        finally:
            cli(env, project, "destroy", "vault", "--yes")
            forget_stacks(project, env, ["vault"])
            for path in enabled:
                vault.sys.disable_auth_method(path)
            shutil.rmtree(project.parent)
        report(results, args.rounds, len(state.clusters), time.perf_counter() - started)


def report(results: dict[int, dict[str, list[Sample]]], rounds: int, clusters: int, total: float) -> None:
    sizes = sorted(results)
    print(
        f"\nfleet cost, per-cluster layout: {' and '.join(map(str, sizes))} stack files (and as many auth mounts), "
        f"{clusters} lab clusters, file backend; medians of {rounds} rounds"
    )
    head = "".join(f"{f'wall s @{z}':>14}{f'CPU s @{z}':>13}{f'MiB @{z}':>11}" for z in sizes)
    print(f"{'run':26}{head}{'wall ratio':>12}{'CPU ratio':>11}")
    for name in FIGURES:
        cells, medians = "", []
        for size in sizes:
            samples = results[size][name]
            m = Sample(*(median([getattr(s, f) for s in samples]) for f in ("wall", "cpu", "peak_mib")))
            medians.append(m)
            cells += f"{m.wall:14.1f}{m.cpu:13.1f}{m.peak_mib:11.0f}"
        a, b = medians[0], medians[-1]
        print(f"{name:26}{cells}{b.wall / a.wall:11.2f}x{b.cpu / a.cpu:10.2f}x")
    for name in FIGURES:  # the rounds themselves, to judge the noise of the medians
        rounds_ = "; ".join(f"@{z}: " + " ".join(f"{s.wall:.1f}" for s in results[z][name]) for z in sizes)
        print(f"  {name}, wall s of each round: {rounds_}")
    print(f"target: ratio {sizes[-1]}/{sizes[0]} <= 1.2x; the whole bench took {total:.0f} s")


if __name__ == "__main__":
    main()
