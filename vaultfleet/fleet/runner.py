"""Run preview / up / destroy over many stacks, in parallel, each through the pinned engine.

The shared stack goes first on up (cluster stacks may rely on its KV mount and policy), then the
access stacks of the per-cluster layout (each cluster's mount and applier policy), then the cluster
stacks; destroy runs in the reverse order; previews all run at once. Stacks run concurrently, each in its own `pulumi` process.

Dangerous steps (fleet/danger.py): `up` previews a stack whose state holds a mount or a state key
first and refuses its dangerous steps unless the run allows that stack (--allow-dangerous); an
allowed `up`, and a `destroy` (naming the stack to destroy is consent enough), lift the program's
`protect` from the stack's guarded objects in the state for that one operation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from vaultfleet.fleet import danger, engine, skip
from vaultfleet.fleet import recovery as recovery_mod
from vaultfleet.fleet.errors import summarise
from vaultfleet.fleet.health import RunChecks, unavailable_during_run, vault_problem
from vaultfleet.stackfile import Project, access_stack_name


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
    refused: list[dict] = field(default_factory=list)
    """`up`: the dangerous steps it refused (the run did not allow the stack); nothing was written."""
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return any(count for op, count in self.changes.items() if op != "same")


def stages(project: Project, stacks: list[str]) -> list[list[str]]:
    """[shared stacks, access stacks, cluster stacks]: the order of an `up` (a destroy's is the
    reverse). Each cluster's privileged writes come before the stacks that rely on them."""
    shared = [s for s in stacks if project.stack(s).is_shared]
    access = [s for s in stacks if project.stack(s).is_access]
    return [shared, access, [s for s in stacks if s not in shared and s not in access]]


def run_one(
    project: Project,
    stack_name: str,
    operation: str,
    env: dict[str, str],
    refresh: bool = True,
    full: bool = False,
    checks: RunChecks | None = None,
    allow_dangerous: bool = False,
) -> StackResult:
    """One stack's operation. `refresh` (the default) reads Vault and the cluster first, so `up`
    puts back what was changed out of band and `preview` shows it; `checks`: the run's Vault
    checks (token asked once per Vault, a short outage waited out once); `allow_dangerous`: `up`
    applies the stack's dangerous steps instead of refusing them."""
    result = StackResult(stack=stack_name, operation=operation)
    started = time.monotonic()
    # The fleet's Vault address, when the stack file validates (else the engine names file and field).
    stack_file = project.stack(stack_name)
    settings = stack_file.valid_settings()
    vault_address = settings.fleet.vault_address if settings else None
    env = engine.state_key_env(env, stack_file.secrets_provider, vault_address)
    try:
        if stack_file.is_access and settings is None:
            # The admin's token runs it: never with a file vaultfleet has not read as the engine would.
            raise _NotRun(
                f"{stack_file.shown} does not validate (`vaultfleet validate {stack_file.file_stack}` says why)"
            )
        problem = vault_address and (checks or RunChecks({vault_address}, env.get("VAULT_TOKEN"))).before_stack(
            vault_address
        )
        if problem:
            raise _NotRun(problem)
        if operation == "preview":
            known = None if refresh or full else skip.unchanged_since_last_up(project, stack_name, env)
            if known:
                result.unchanged, result.changes = known
            else:
                ran = _plan(project, stack_name, env, refresh)
                result.changes, result.steps = ran.changes, ran.steps
        elif operation in ("up", "destroy"):
            skip.forget(project, stack_name, env)  # whatever happens next, the state will have changed
            ran, recovery = _apply(project, stack_name, operation, env, refresh, allow_dangerous)
            result.recovered = recovery.describe() if recovery else None
            result.changes, result.steps = ran.changes, ran.steps
            if operation == "up":
                skip.remember_up(project, stack_name, env)
        else:
            raise ValueError(f"unknown operation {operation}")
        result.ok = True
    except _NotRun as exc:
        result.error = f"not run: {exc}"
    except engine.CommandError as exc:
        result.error = summarise(str(exc))
        # Most engine failures mid-fleet are Vault going away (or away for a while): say so first, plainly.
        problem = vault_address and (vault_problem(vault_address) or unavailable_during_run(vault_address, str(exc)))
        if problem:
            result.error = f"{problem}\n{result.error}"
    except danger.Refused as exc:
        result.error = str(exc)
        result.refused = [{"op": d.op, "type": d.type, "name": d.name, "danger": d.reason} for d in exc.steps]
    except (recovery_mod.StackLocked, recovery_mod.UnresolvedPendingCreate) as exc:
        result.error = str(exc)
    except Exception as exc:  # noqa: BLE001 - one stack's failure must not stop the fleet
        result.error = f"{type(exc).__name__}: {exc}"
    result.seconds = round(time.monotonic() - started, 1)
    return result


def _refresh_flag(refresh: bool) -> str:
    # Always explicit: Pulumi.yaml says `refresh: always` for plain `pulumi`, and only an explicit
    # --refresh=false turns that off.
    return f"--refresh={'true' if refresh else 'false'}"


class _NotRun(Exception):
    """The stack was not started (its Vault cannot serve it); nothing was changed."""


def _plan(project: Project, stack_name: str, env: dict[str, str], refresh: bool) -> engine.EngineRun:
    """The stack's preview. A preview that `protect` alone stopped (the program protects what a
    dangerous step would take) is a complete plan: returned with its dangerous steps marked."""
    try:
        return engine.run_operation(
            project.root,
            stack_name,
            env,
            ["preview", _refresh_flag(refresh)],
            project.stack(stack_name).secrets_provider,
            config_args=project.stack(stack_name).config_file_args,
        )
    except engine.CommandError as exc:
        if exc.run is None or not danger.stopped_only_by_protection(exc.run.dangerous, exc.run.errors):
            raise
        ran = exc.run
        # The engine does not count a delete it refused: count the plan's steps instead.
        for op in ("create", "update", "delete", "replace"):
            planned = sum(1 for s in ran.steps if s["op"] == op)
            if planned > ran.changes.get(op, 0):
                ran.changes[op] = planned
        return ran


def _apply(
    project: Project, stack_name: str, operation: str, env: dict[str, str], refresh: bool, allow_dangerous: bool
):
    """`up` or `destroy`, after healing what an interrupted earlier run left behind; an `up` of a
    stack that holds what a dangerous step could take is previewed first, and refused (danger.Refused,
    nothing written) when it has dangerous steps the run does not allow."""
    recovery = recovery_mod.Recovery()
    # Before anything reads the stack: a kill may have broken its checkpoint's metadata.
    recovery.repaired_files += recovery_mod.repair_file_backend(
        engine.backend_url(project.root, env), project.name, stack_name
    )
    run_cli = engine.cli(project.root, stack_name, env, project.stack(stack_name).config_file_args)
    args = [operation, "--yes", "--skip-preview", _refresh_flag(refresh)]
    exported: list[dict] = []

    def export() -> dict:
        exported.append(recovery_mod.plain_export(run_cli))
        return exported[-1]

    def heal() -> bool:
        """Settle what an interrupted run left; False when the stack does not exist yet."""
        try:
            recovery_mod.settle_pending(export, run_cli, recovery)
        except engine.CommandError as exc:
            if "no stack named" not in str(exc):  # a stack not created yet has nothing to heal
                raise
            return False
        return True

    exists = _retry_if_stale_lock(run_cli, recovery, heal)
    state = (export() if recovery.adopted else exported[-1]) if exists else None
    unprotect: list[str] = []
    if operation == "destroy" or allow_dangerous:
        # The run names the stack: consent to what its dangerous steps take. The program protects
        # again whatever a successful `up` keeps; a failed operation, _protect_again.
        unprotect = danger.protected(state)
    elif danger.guarded(state):
        plan = _retry_if_stale_lock(run_cli, recovery, lambda: _plan(project, stack_name, env, refresh))
        if plan.dangerous:
            raise danger.Refused(stack_name, plan.dangerous)

    def operate() -> engine.EngineRun:
        stack_file = project.stack(stack_name)
        return engine.run_operation(
            project.root,
            stack_name,
            env,
            args,
            stack_file.secrets_provider,
            new=not exists,
            config_args=stack_file.config_file_args,
        )

    if unprotect:  # state only: lifts the program's `protect` for this one operation
        _retry_if_stale_lock(run_cli, recovery, lambda: run_cli(["state", "unprotect", *unprotect, "--yes"]))
    try:
        ran = _retry_if_stale_lock(run_cli, recovery, operate)
    except BaseException:
        _protect_again(run_cli, unprotect)
        raise
    return ran, recovery


def _protect_again(run_cli, urns: list[str]) -> None:
    """After a failed operation, protect again what it left in the state, so no later plain
    `pulumi up` finds it unprotected (a successful `up` protects it again itself: the program
    registers it so)."""
    if not urns:
        return
    try:
        deployment = recovery_mod.plain_export(run_cli).get("deployment") or {}
        left = {r["urn"] for r in deployment.get("resources") or []}
        again = [urn for urn in urns if urn in left]
        if again:
            run_cli(["state", "protect", *again, "--yes"])
    except engine.CommandError:
        pass  # the failure being reported matters more; the next `vaultfleet up` previews first anyway


def _retry_if_stale_lock(run_cli, recovery: recovery_mod.Recovery, operation):
    """Run `operation`; if it fails on a lock left by a dead engine, remove the lock and run it again."""
    try:
        return operation()
    except engine.CommandError as exc:
        if not recovery_mod.clear_stale_locks(run_cli, str(exc), recovery):
            raise
    return operation()


def run(
    project: Project,
    stacks: list[str],
    operation: str,
    parallel: int = 4,
    refresh: bool = True,
    env: dict[str, str] | None = None,
    on_result: Callable[[StackResult], None] | None = None,
    on_start: Callable[[str], None] | None = None,
    full: bool = False,
    allow_dangerous: Collection[str] = (),
) -> list[StackResult]:
    """`operation` over `stacks`; `allow_dangerous`: the stacks whose dangerous steps `up` applies
    (the others' are refused, fleet/danger.py)."""
    env = env or engine.engine_env()
    in_order = stages(project, stacks)
    if operation == "preview":
        groups = [[s for group in in_order for s in group]]  # a preview changes nothing: all at once
    else:
        groups = in_order[::-1] if operation == "destroy" else in_order
    results: list[StackResult] = []
    addresses = {s.fleet.vault_address for name in stacks if (s := project.stack(name).valid_settings())}
    # One authenticated check per Vault the stacks use: a token Vault no longer accepts fails every
    # stack of that Vault with that cause (a preview that skips the engine included).
    checks = RunChecks(addresses, env.get("VAULT_TOKEN"))

    def one(name: str) -> StackResult:
        if on_start:
            on_start(name)
        r = run_one(project, name, operation, env, refresh, full, checks, allow_dangerous=name in allow_dangerous)
        if on_result:
            on_result(r)
        return r

    for group in groups:
        if not group:
            continue
        # `up`: the cluster stacks wait for the privileged stacks (shared, then per-cluster access),
        # which write what they may write (their applier policies) and what they write under (their
        # mounts). `destroy`: the privileged stacks wait for the clusters, whose objects their mounts'
        # removal would take out from under them.
        stopped = [r for r in results if not r.ok]
        waiting = {name: blockers for name in group if (blockers := _waits_for(project, name, operation, stopped))}
        results += [_waited(name, operation, blockers, on_result) for name, blockers in waiting.items()]
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            results += list(pool.map(one, [name for name in group if name not in waiting]))
    return results


def _waits_for(project: Project, name: str, operation: str, stopped: list[StackResult]) -> list[StackResult]:
    """The failed or refused stacks of earlier stages that `name` depends on: on `up`, every shared
    stack's, and a cluster stack its own access stack's; on `destroy`, an access stack its cluster's,
    and the shared stack every one's."""
    stack = project.stack(name)
    if operation == "destroy":
        return [r for r in stopped if stack.is_shared or (stack.is_access and r.stack == stack.file_stack)]
    return [r for r in stopped if project.stack(r.stack).is_shared or r.stack == access_stack_name(name)]


def _waited(
    name: str, operation: str, stopped: list[StackResult], on_result: Callable[[StackResult], None] | None
) -> StackResult:
    """A stack not started because a stack it waits for failed or was refused; nothing was changed."""
    causes = "; ".join(f"{r.stack}, which {_first_line(r.error)}" for r in stopped)
    result = StackResult(stack=name, operation=operation, error=f"not run: waits for {causes}; nothing was changed")
    if on_result:
        on_result(result)
    return result


def _first_line(error: str | None) -> str:
    line = (error or "failed").splitlines()[0]
    if line.startswith("not run: "):
        return f"was {line}"
    return line if line.startswith(("refused", "failed")) else f"failed: {line}"
