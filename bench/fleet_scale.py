"""Benchmark: a fleet of N cluster stacks (default 20, then 100) on the lab, and how it grows.

Per fleet size, on a scratch copy of the project (stacks share the 6 lab clusters, each with its own
reviewer ServiceAccount):
1. One process, file backend, `--parallel 4`: `up --all` (new stacks), `preview --all --no-refresh`
   (unchanged: the skip), `preview --all` (refresh: the engine for every stack), one stack file
   edited and `preview --changed-since HEAD`, `destroy --all`.
2. Pulumi's PostgreSQL backend on the lab's PostgreSQL, the fleet split as a CI matrix does it: the
   shared stack first and once, then 4 shard processes at once (`--shard I/4`): up, preview, destroy.
Figures: wall seconds, CPU seconds of the whole process tree, wall per stack, and peak memory (the
largest sum of resident memory over every process of the run, sampled every 0.2 s).

Usage: .venv/bin/python bench/fleet_scale.py [--sizes 20,100] [--parallel 4] [--shards 4]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from _setup import CLI, commit_project, forget_stacks, lab_project, only_stacks, write_cluster_stack

from tests.harness import copy_project
from vaultfleet.lab import state_backend

PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Sample:
    wall: float
    cpu: float
    peak_mib: float


def _tree_rss(roots: set[int]) -> int:
    """Resident bytes of `roots` and all their descendants, from /proc."""
    parents, rss = {}, {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        parents[int(entry.name)], rss[int(entry.name)] = int(fields[1]), int(fields[21]) * PAGE
    total, frontier = 0, set(roots)
    while frontier:
        total += sum(rss.get(p, 0) for p in frontier)
        frontier = {pid for pid, parent in parents.items() if parent in frontier}
    return total


def run_together(argvs: list[list[str]], env: dict[str, str], cwd: Path) -> Sample:
    """Run the commands at once; fail (with their output) if any fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    logs = [tempfile.TemporaryFile("w+") for _ in argvs]
    procs = [
        subprocess.Popen(a, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        for a, log in zip(argvs, logs, strict=True)
    ]
    peak, done = 0, threading.Event()

    def sample():
        nonlocal peak
        while not done.wait(0.2):
            peak = max(peak, _tree_rss({p.pid for p in procs}))

    sampler = threading.Thread(target=sample)
    sampler.start()
    codes = [p.wait() for p in procs]
    done.set()
    sampler.join()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    for argv, code, log in zip(argvs, codes, logs, strict=True):
        log.seek(0)
        if code != 0:
            # The summary lines only: the engine's diagnostics of a hundred stacks hide the cause.
            lines = [line for line in log.read().splitlines() if not line.startswith("  ")]
            raise RuntimeError(f"{' '.join(argv)} failed ({code}):\n" + "\n".join(lines[-60:]))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Sample(wall, cpu, peak / 2**20)


def run(argv: list[str], env: dict[str, str], cwd: Path) -> Sample:
    return run_together([argv], env, cwd)


def fleet(project: Path, state, size: int) -> list[str]:
    only_stacks(project, ["vault"])
    names = [f"scale-{i:03d}" for i in range(size)]
    for i, name in enumerate(names):
        write_cluster_stack(project, name, state.clusters[i % len(state.clusters)].name)
    return names


def one_process(project: Path, env: dict[str, str], names: list[str], parallel: str) -> dict[str, Sample]:
    figures = {"up --all": run([CLI, "up", "--all", "--parallel", parallel], env, project)}
    commit_project(project)
    figures["preview --all --no-refresh (skip)"] = run(
        [CLI, "preview", "--all", "--no-refresh", "--parallel", parallel], env, project
    )
    figures["preview --all (refresh, engine)"] = run([CLI, "preview", "--all", "--parallel", parallel], env, project)
    edited = project / "stacks" / f"Pulumi.{names[len(names) // 2]}.yaml"
    edited.write_text(edited.read_text().replace("ttl: 1h", "ttl: 2h", 1))
    figures["preview --changed-since (1 changed)"] = run([CLI, "preview", "--changed-since", "HEAD"], env, project)
    figures["destroy --all"] = run([CLI, "destroy", "--all", "--yes", "--parallel", parallel], env, project)
    return figures


def sharded(project: Path, env: dict[str, str], shards: int, parallel: str) -> dict[str, Sample]:
    figures = {}
    for operation, extra in (("up", []), ("preview", []), ("destroy", ["--yes"])):
        each = [
            [CLI, operation, "--all", "--shard", f"{i}/{shards}", "--parallel", parallel, *extra]
            for i in range(1, shards + 1)
        ]
        shared = [CLI, operation, "vault", *extra]
        # The shared stack once: before the shards (up, preview), after them (destroy).
        first, then = (shared, each) if operation != "destroy" else (None, each)
        a = run(first, env, project) if first else Sample(0, 0, 0)
        b = run_together(then, env, project)
        c = run(shared, env, project) if operation == "destroy" else Sample(0, 0, 0)
        figures[f"{operation}: shared, then {shards} shards at once"] = Sample(
            a.wall + b.wall + c.wall, a.cpu + b.cpu + c.cpu, max(a.peak_mib, b.peak_mib, c.peak_mib)
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="20,100")
    parser.add_argument("--parallel", default="4")
    parser.add_argument("--shards", type=int, default=4)
    args = parser.parse_args()

    with lab_project() as (state, env, project):
        if state.postgres is None:
            raise SystemExit("the lab runs no PostgreSQL: `vaultfleet lab up` starts it")
        state_backend.ensure_database(state.postgres, "pulumi_bench")
        pg_env = {
            **env,
            "PULUMI_BACKEND_URL": state_backend.state_backend_url(state.postgres, "pulumi_bench"),
            "PGPASSWORD": state.postgres.password(),
        }
        results: dict[int, dict[str, Sample]] = {}
        for size in (int(s) for s in args.sizes.split(",")):
            names = fleet(project, state, size)
            try:
                results[size] = one_process(project, env, names, args.parallel)
            finally:
                forget_stacks(project, env, [*names, "vault"])
            # A fresh copy: the stack files' salts belong to the file backend's stacks.
            print(f"{size} stacks, one process: " + ", ".join(f"{k} {v.wall:.1f} s" for k, v in results[size].items()))
            pg_project = copy_project(Path(tempfile.mkdtemp(prefix="vaultfleet-bench-pg-")))
            fleet(pg_project, state, size)
            project_env = {**pg_env, "VAULTFLEET_PROJECT": str(pg_project)}
            try:
                results[size] |= sharded(pg_project, project_env, args.shards, args.parallel)
            finally:
                forget_stacks(pg_project, project_env, [*names, "vault"])
            report(results, args, len(state.clusters))


def report(results: dict[int, dict[str, Sample]], args, clusters: int) -> None:
    sizes = sorted(results)
    print(
        f"\nfleet scale: cluster stacks {', '.join(map(str, sizes))} (+ the shared stack) on {clusters} lab clusters "
        f"clusters, --parallel {args.parallel}, {args.shards} shards, cores: {os.cpu_count()}; one run each"
    )
    print(f"{'run':44} {'stacks':>6} {'wall s':>8} {'CPU s':>8} {'wall/stack':>10} {'peak MiB':>9}")
    for name in results[sizes[0]]:
        for size in sizes:
            s = results[size].get(name)
            if s:
                print(f"{name:44} {size:6d} {s.wall:8.1f} {s.cpu:8.1f} {s.wall / size:10.2f} {s.peak_mib:9.0f}")
        if len(sizes) > 1 and all(name in results[z] for z in (sizes[0], sizes[-1])):
            a, b = results[sizes[0]][name], results[sizes[-1]][name]
            print(
                f"{'':44} {'growth':>6} {b.wall / a.wall:7.2f}x {b.cpu / a.cpu:7.2f}x "
                f"(stacks {sizes[-1] / sizes[0]:.0f}x) peak {b.peak_mib / a.peak_mib:.2f}x"
            )


if __name__ == "__main__":
    main()
