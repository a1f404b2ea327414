"""Run preview / up / destroy over many stacks through the Automation API, in parallel.

The shared stack goes first on up (cluster stacks may rely on its KV mount and policy) and last on
destroy; previews all run at once. Stacks run concurrently, each in its own `pulumi` process.
"""

from __future__ import annotations

import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from vaultfleet import config
from vaultfleet import engine
from vaultfleet import recovery as recovery_mod
from vaultfleet.engine_errors import summarise
from vaultfleet.vault_health import vault_problem

# Files whose change touches every stack (everything that is not one stack's own file).
SHARED_INPUTS = ("Pulumi.yaml", "__main__.py", "components/", "policies/", "vaultfleet/", "pyproject.toml")


@dataclass
class StackResult:
    stack: str
    operation: str
    ok: bool = False
    changes: dict[str, int] = field(default_factory=dict)
    """Operation -> count, as the engine reports it (create, update, delete, replace, same)."""
    steps: list[dict] = field(default_factory=list)
    """One entry per changed resource: op, type, name."""
    error: str | None = None
    recovered: str | None = None
    """What was healed from an interrupted earlier run (stale lock, pending operations), if anything."""
    unchanged: str | None = None
    """Set when a preview did not run the engine: why its result is known to be "no changes"."""
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return any(count for op, count in self.changes.items() if op != "same")


def all_stacks(project: Path) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (project / "stacks").glob("Pulumi.*.yaml"))


def is_shared(project: Path, stack: str) -> bool:
    doc = yaml.safe_load(config.stack_file(project, stack).read_text()) or {}
    return (doc.get("config") or {}).get(f"{config.NAMESPACE}:kind") == "shared"


def changed_since(project: Path, ref: str) -> list[str]:
    """Stacks affected by the git diff from `ref` to the working tree."""
    diff = subprocess.run(
        ["git", "diff", "--name-only", ref, "--", "."], cwd=project, capture_output=True, text=True, check=False
    )
    if diff.returncode != 0:
        raise ValueError(f"git diff {ref} failed: {diff.stderr.strip()}")
    untracked = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard"], cwd=project, capture_output=True, text=True, check=False
    ).stdout
    # git prints paths relative to the repository root; make them relative to the project.
    top = Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=project, capture_output=True, text=True).stdout.strip())
    files = [str((top / f).relative_to(project)) for f in diff.stdout.split() if (top / f).is_relative_to(project)]
    files += untracked.split()
    stacks = set(all_stacks(project))
    if any(f.startswith(SHARED_INPUTS) for f in files):
        return sorted(stacks)
    touched = {Path(f).name[len("Pulumi."):-len(".yaml")] for f in files if f.startswith("stacks/Pulumi.")}
    return sorted(touched & stacks)


def ordered(project: Path, stacks: list[str]) -> tuple[list[str], list[str]]:
    """(shared stacks, cluster stacks); callers run the first group before (or, destroy, after)."""
    shared = [s for s in stacks if is_shared(project, s)]
    return shared, [s for s in stacks if s not in shared]


def engine_env() -> dict[str, str]:
    """The caller's environment plus offline engine settings and the tool cache on PATH."""
    from vaultfleet.lab.tools import search_path

    return {
        **os.environ,
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PATH": search_path(),
    }


def run_one(
    project: Path, stack_name: str, operation: str, env: dict[str, str], refresh: bool = False, full: bool = False
) -> StackResult:
    from pulumi.automation import CommandError

    result = StackResult(stack=stack_name, operation=operation)
    started = time.monotonic()
    vault_address = _vault_address(project, stack_name)
    try:
        problem = vault_address and vault_problem(vault_address)
        if problem:
            raise _NotRun(problem)
        if operation == "preview":
            known = None if refresh or full else unchanged_since_last_up(project, stack_name, env)
            if known:
                result.unchanged, result.changes = known
            else:
                ran = engine.run_operation(project, stack_name, env, ["preview", *(["--refresh"] if refresh else [])])
                result.changes, result.steps = ran.changes, ran.steps
        elif operation in ("up", "destroy"):
            ran, recovery = _apply(project, stack_name, operation, env, refresh)
            result.recovered = recovery.describe() if recovery else None
            result.changes, result.steps = ran.changes, ran.steps
        else:
            raise ValueError(f"unknown operation {operation}")
        result.ok = True
    except _NotRun as exc:
        result.error = f"not run: {exc}"
    except CommandError as exc:
        result.error = summarise(str(exc))
        # Most engine failures mid-fleet are Vault going away: say so first, plainly.
        problem = vault_address and vault_problem(vault_address)
        if problem:
            result.error = f"{problem}\n{result.error}"
    except (recovery_mod.StackLocked, recovery_mod.UnresolvedPendingCreate) as exc:
        result.error = str(exc)
    except Exception as exc:  # noqa: BLE001 - one stack's failure must not stop the fleet
        result.error = f"{type(exc).__name__}: {exc}"
    result.seconds = round(time.monotonic() - started, 1)
    return result


def unchanged_since_last_up(project: Path, stack_name: str, env: dict[str, str]) -> tuple[str, dict[str, int]] | None:
    """(why, counts) when a plain preview of the stack cannot show a change: its last history entry
    is a successful update, nothing wrote the state after it (no refresh, crash or state edit), and
    the program's inputs are exactly those that update ran with. None otherwise (or when in doubt):
    the engine runs.

    Two quick CLI reads (about a tenth of a preview's CPU) instead of running the program and both
    providers. `--refresh` (drift) and `--full` always run the engine.
    """
    import json

    from pulumi.automation import CommandError

    from vaultfleet import fingerprint

    run_cli = engine.cli(project, stack_name, env)
    try:
        history = json.loads(run_cli(["stack", "history", "--json", "--page-size", "1"]).stdout or "[]")
        if not history or history[0].get("kind") != "update" or history[0].get("result") != "succeeded":
            return None
        state = recovery_mod.plain_export(run_cli).get("deployment") or {}
    except (CommandError, ValueError):
        return None  # no such stack yet, or unreadable: let the engine say
    last = history[0]
    try:
        written_at = _timestamp(state.get("manifest", {}).get("time", ""))
        ended_at = _timestamp(last.get("endTime", ""))
    except ValueError:
        return None
    # The history's end time has whole seconds; the checkpoint's is finer.
    if written_at > ended_at + 1 or state.get("pending_operations"):
        return None
    root = next((r for r in state.get("resources") or [] if r.get("type") == "pulumi:pulumi:Stack"), {})
    if (root.get("outputs") or {}).get(fingerprint.OUTPUT) != fingerprint.inputs_fingerprint(project, stack_name):
        return None
    # As a preview would count them: every resource in the state is "same".
    same = len(state.get("resources") or [])
    return f"inputs and state as the update of {last.get('endTime')} left them; engine not run", {"same": same}


def _timestamp(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class _NotRun(Exception):
    """The stack was not started (its Vault cannot serve it); nothing was changed."""


def _vault_address(project: Path, stack_name: str) -> str | None:
    """The stack's fleet Vault address, or None when the stack file does not validate (the engine
    then reports the file and field itself)."""
    from vaultfleet.validate import validate

    _, stacks = validate(project, [stack_name])
    return stacks[0].fleet.vault_address if stacks else None


def _apply(project: Path, stack_name: str, operation: str, env: dict[str, str], refresh: bool):
    """`up` or `destroy`, after healing what an interrupted earlier run left behind."""
    recovery = recovery_mod.Recovery()
    # Before anything reads the stack: a kill may have broken its checkpoint's metadata.
    recovery.repaired_files += recovery_mod.repair_file_backend(
        engine.backend_url(project, env), engine.project_name(project), stack_name)
    run_cli = engine.cli(project, stack_name, env)
    if operation == "up":
        args = ["up", "--yes", "--skip-preview", *(["--refresh"] if refresh else [])]
    else:
        args = ["destroy", "--yes", "--skip-preview"]

    def heal() -> None:
        from pulumi.automation import CommandError

        try:
            recovery_mod.settle_pending(lambda: recovery_mod.plain_export(run_cli), run_cli, recovery)
        except CommandError as exc:
            if "no stack named" not in str(exc):  # a stack not created yet has nothing to heal
                raise

    _retry_if_stale_lock(run_cli, recovery, heal)
    ran = _retry_if_stale_lock(run_cli, recovery, lambda: engine.run_operation(project, stack_name, env, args))
    return ran, recovery


def _retry_if_stale_lock(run_cli, recovery: recovery_mod.Recovery, operation):
    """Run `operation`; if it fails on a lock left by a dead engine, remove the lock and run it again."""
    from pulumi.automation import CommandError

    try:
        return operation()
    except CommandError as exc:
        if not recovery_mod.clear_stale_locks(run_cli, str(exc), recovery):
            raise
    return operation()


def run(
    project: Path,
    stacks: list[str],
    operation: str,
    parallel: int = 4,
    refresh: bool = False,
    env: dict[str, str] | None = None,
    on_result: Callable[[StackResult], None] | None = None,
    on_start: Callable[[str], None] | None = None,
    full: bool = False,
) -> list[StackResult]:
    env = env or engine_env()
    shared, clusters = ordered(project, stacks)
    if operation == "preview":
        groups = [shared + clusters]  # a preview changes nothing: no order to keep, all at once
    else:
        groups = [clusters, shared] if operation == "destroy" else [shared, clusters]
    results: list[StackResult] = []

    def one(name: str) -> StackResult:
        if on_start:
            on_start(name)
        r = run_one(project, name, operation, env, refresh, full)
        if on_result:
            on_result(r)
        return r

    for group in groups:
        if not group:
            continue
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            results += list(pool.map(one, group))
    return results
