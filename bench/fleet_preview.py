"""Benchmark: previewing a fleet of 20 unchanged cluster stacks (plus the shared stack).

1. `vaultfleet preview --all --no-refresh` against a serial loop of plain
   `pulumi preview -s S --refresh=false` (ratio, same run), and `--full` (the engine for every stack).
2. Changed-only: 1 of 20 stack files edited, `vaultfleet preview --changed-since HEAD --no-refresh`
   against a plain `pulumi preview --refresh=false` of that one stack, and of it plus the shared
   stack (which reads every cluster's stack file, so the change affects it too).
Without refresh on both sides: the skip applies only there, and a refresh costs the same either way.

Usage: .venv/bin/python bench/fleet_preview.py [--stacks 20] [--rounds 3] [--parallel 4]
"""

from __future__ import annotations

import argparse
import os

from _setup import CLI, commit_project, lab_project, median, only_stacks, remove_stacks, timed, write_cluster_stack


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stacks", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args()

    with lab_project() as (state, env, project):
        clusters = [f"bench-{i:02d}" for i in range(args.stacks)]
        only_stacks(project, ["vault"])
        for i, name in enumerate(clusters):
            write_cluster_stack(project, name, state.clusters[i % len(state.clusters)].name)
        stacks = ["vault", *clusters]
        try:
            timed([CLI, "up", "--all", "--parallel", str(args.parallel)], env, project)
            commit_project(project)
            serial, full, fleet = [], [], []
            for _ in range(args.rounds):
                serial.append(
                    sum(
                        timed(["pulumi", "preview", "-s", s, "--non-interactive", "--refresh=false"], env, project)
                        for s in stacks
                    )
                )
                full.append(
                    timed(
                        [CLI, "preview", "--all", "--no-refresh", "--full", "--parallel", str(args.parallel)],
                        env,
                        project,
                    )
                )
                fleet.append(
                    timed([CLI, "preview", "--all", "--no-refresh", "--parallel", str(args.parallel)], env, project)
                )

            edited = project / "stacks" / f"Pulumi.{clusters[7]}.yaml"
            edited.write_text(edited.read_text().replace("ttl: 1h", "ttl: 2h", 1))
            one, both, changed = [], [], []
            for _ in range(args.rounds):
                one.append(
                    timed(
                        ["pulumi", "preview", "-s", clusters[7], "--non-interactive", "--refresh=false"], env, project
                    )
                )
                # The change feeds the shared stack too (it reads every cluster's file).
                both.append(
                    one[-1]
                    + timed(["pulumi", "preview", "-s", "vault", "--non-interactive", "--refresh=false"], env, project)
                )
                changed.append(timed([CLI, "preview", "--changed-since", "HEAD", "--no-refresh"], env, project))

            s, u, f, o, c = median(serial), median(full), median(fleet), median(one), median(changed)
            b = median(both)
            print(
                f"fleet: {len(stacks)} stacks (shared + {len(clusters)} clusters on {len(state.clusters)} lab clusters), "
                f"rounds: {args.rounds}, parallel: {args.parallel}, cores: {os.cpu_count()}; medians"
            )
            print(f"serial loop of plain `pulumi preview`     : {s:7.2f} s")
            print(
                f"`vaultfleet preview --all --full`         : {u:7.2f} s   serial/full  = {s / u:.2f}x (engine for every stack)"
            )
            print(
                f"`vaultfleet preview --all`                : {f:7.2f} s   serial/fleet = {s / f:.2f}x (unchanged stacks skip the engine)"
            )
            print(f"plain `pulumi preview` of the one changed : {o:7.2f} s")
            print(f"plain `pulumi preview` of it and `vault`  : {b:7.2f} s   (the two stacks the change affects)")
            print(
                f"`vaultfleet preview --changed-since HEAD` : {c:7.2f} s   changed-only/one-stack = {c / o:.2f}x, "
                f"changed-only/both = {c / b:.2f}x"
            )
        finally:
            remove_stacks(project, env, stacks)


if __name__ == "__main__":
    main()
