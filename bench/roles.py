"""Benchmark: no-op preview of a cluster stack with 3 roles against one with 100 roles.

Both stacks are brought up first; then each is previewed unchanged (plain `pulumi preview`, and
`vaultfleet preview`). Shows how preview time grows with the number of resources in a stack.

Usage: .venv/bin/python bench/roles.py [--rounds 3]
"""

from __future__ import annotations

import argparse

from _setup import CLI, lab_project, median, only_stacks, remove_stacks, timed, write_cluster_stack


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with lab_project() as (state, env, project):
        only_stacks(project, ["vault"])
        sizes = {"roles-3": 3, "roles-100": 100}
        for i, (name, roles) in enumerate(sizes.items()):
            write_cluster_stack(project, name, state.clusters[i].name, roles=roles)
        stacks = ["vault", *sizes]
        try:
            timed([CLI, "up", *stacks], env, project)
            plain = {
                n: median(
                    [
                        timed(["pulumi", "preview", "-s", n, "--non-interactive", "--refresh=false"], env, project)
                        for _ in range(args.rounds)
                    ]
                )
                for n in sizes
            }
            full = {
                n: median(
                    [timed([CLI, "preview", n, "--no-refresh", "--full"], env, project) for _ in range(args.rounds)]
                )
                for n in sizes
            }
            fleet = {
                n: median([timed([CLI, "preview", n, "--no-refresh"], env, project) for _ in range(args.rounds)])
                for n in sizes
            }
        finally:
            remove_stacks(project, env, stacks)
        print(f"no-op preview of one cluster stack, rounds: {args.rounds}; medians")
        for n in sizes:
            print(
                f"{n:<10} plain `pulumi preview` {plain[n]:6.2f} s   `vaultfleet preview --full` {full[n]:6.2f} s   "
                f"`vaultfleet preview` (engine skipped) {fleet[n]:6.2f} s"
            )
        print(
            f"100 roles / 3 roles: plain {plain['roles-100'] / plain['roles-3']:.2f}x, "
            f"--full {full['roles-100'] / full['roles-3']:.2f}x, skipped {fleet['roles-100'] / fleet['roles-3']:.2f}x"
        )


if __name__ == "__main__":
    main()
