"""Shared set-up of the benchmarks: the lab, a scratch copy of the project, generated stack files.

Benchmarks print figures and assert nothing. Each starts the lab (6 clusters, the server
$VAULTFLEET_LAB_SERVER names) if none runs and stops it again at the end; a running lab is reused
and left running.
"""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# The benchmarks run as scripts (`.venv/bin/python bench/x.py`, docs/benchmarks.md), so Python puts
# bench/ on the path, not the repository; the editable install maps only vaultfleet and components.
# The repository root, then, for the tests' harness (`tests` is a package there).
sys.path.insert(0, str(REPO))

from tests.harness import LAB_CLUSTERS, copy_project  # noqa: E402 - the lab tests' scratch copy
from vaultfleet.lab import lab, processes, servers  # noqa: E402
from vaultfleet.lab.record import LabState  # noqa: E402

CLI = str(REPO / ".venv/bin/vaultfleet")


@contextlib.contextmanager
def lab_project(high_availability: bool = False):
    """(lab state, engine environment, project copy); the lab is started if none runs (with
    `high_availability`: an HA one of two clusters, `lab up --ha --clusters 2 --no-postgres`)."""
    state = LabState.load()
    started = state is None or not all(processes.is_running(p) for p in state.processes)
    if started:
        clusters = 2 if high_availability else LAB_CLUSTERS
        state = lab.up(
            clusters,
            echo=None,
            with_postgres=not high_availability,
            server=servers.from_env(),
            high_availability=high_availability,
        )
    elif high_availability and not state.ha:
        raise SystemExit("this benchmark needs an HA lab: `vaultfleet lab down`, or another $VAULTFLEET_LAB_DIR")
    env = {
        **os.environ,
        **state.env(),
        "VAULT_TOKEN": state.vault_token(),
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    }
    project = copy_project(Path(tempfile.mkdtemp(prefix="vaultfleet-bench-")))
    env["VAULTFLEET_PROJECT"] = str(project)
    try:
        yield state, env, project
    finally:
        if started:
            lab.down(echo=None)


def write_cluster_stack(project: Path, name: str, context: str, roles: int = 2) -> None:
    """A cluster stack on a lab context. Stacks sharing a context get their own reviewer account,
    so 20 stacks can live on the 6 lab clusters without fighting over one ServiceAccount."""
    doc = {
        "config": {
            "vaultfleet:cluster": {"kubeContext": context, "reviewerServiceAccount": f"vault-auth-{name}"},
            "vaultfleet:roles": [
                {
                    "name": f"role-{i}",
                    "serviceAccounts": [f"app-{i}"],
                    "namespaces": ["app"],
                    "policies": ["kv-read"],
                    "ttl": "1h",
                    "audience": "vault",
                }
                for i in range(roles)
            ],
        }
    }
    (project / "stacks" / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def only_stacks(project: Path, keep: list[str]) -> None:
    """Remove every stack file but `keep` (the shipped lab-a/lab-b would double up on contexts)."""
    for path in (project / "stacks").glob("Pulumi.*.yaml"):
        if path.name.removeprefix("Pulumi.").removesuffix(".yaml") not in keep:
            path.unlink()


def measured(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one command, its whole process tree: user + system time of
    every descendant it waited for (the engine, language host, program and providers)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    return measured(argv, env, cwd)[0]


def median(values: list[float]) -> float:
    return statistics.median(values)


def remove_stacks(project: Path, env: dict[str, str], names: list[str]) -> None:
    from vaultfleet.fleet.runner import run
    from vaultfleet.stackfile import Project

    run(Project(project), names, "destroy", env=env, parallel=4)
    forget_stacks(project, env, names)


def forget_stacks(project: Path, env: dict[str, str], names: list[str]) -> None:
    """Remove the stacks from the backend, whatever they still hold (a failed run's leftovers)."""
    for name in names:
        subprocess.run(
            ["pulumi", "stack", "rm", "-s", name, "--yes", "--force"], env=env, cwd=project, capture_output=True
        )


def commit_project(project: Path) -> None:
    """Commit the project in a new git repository, as a real one would be after its first `up`
    (`pulumi stack init` wrote each stack file's encryptionsalt, which belongs in the commit)."""
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    (project / ".gitignore").write_text(".venv\n__pycache__/\n")
    for argv in ([*git, "init", "-q"], [*git, "add", "-A"], [*git, "commit", "-qm", "fleet"]):
        subprocess.run(argv, cwd=project, check=True)
