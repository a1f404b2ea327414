"""Benchmark: `vaultfleet --help` and `vaultfleet validate` over 100 stack files (no lab needed).

Usage: .venv/bin/python bench/cli_startup.py [--rounds 5] [--stacks 100]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from _setup import CLI, REPO, median, timed, write_cluster_stack


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stacks", type=int, default=100)
    args = parser.parse_args()

    project = Path(tempfile.mkdtemp(prefix="vaultfleet-bench-"))
    shutil.copytree(REPO / "policies", project / "policies")
    shutil.copy(REPO / "Pulumi.yaml", project / "Pulumi.yaml")
    (project / "stacks").mkdir()
    # Each stack names a context of a kubeconfig validate never reads: validate needs no cluster.
    for i in range(args.stacks):
        write_cluster_stack(project, f"cluster-{i:03d}", f"ctx-{i:03d}", roles=3)
    env = {**os.environ, "VAULTFLEET_PROJECT": str(project)}
    python = str(REPO / ".venv/bin/python")
    bare = median([timed([python, "-c", "pass"], env, project) for _ in range(args.rounds)])
    help_ = median([timed([CLI, "--help"], env, project) for _ in range(args.rounds)])
    validate = median([timed([CLI, "validate"], env, project) for _ in range(args.rounds)])
    print(f"rounds: {args.rounds}; medians")
    print(f"python interpreter start (floor)            : {bare:6.3f} s")
    print(f"`vaultfleet --help`                         : {help_:6.3f} s   {help_ / bare:.1f}x the interpreter")
    print(
        f"`vaultfleet validate` ({args.stacks} stack files)     : {validate:6.3f} s   "
        f"{1000 * (validate - help_) / args.stacks:.1f} ms per stack file beyond start-up"
    )


if __name__ == "__main__":
    main()
