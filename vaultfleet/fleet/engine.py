"""One engine operation on one stack, through the pinned `pulumi` CLI, read back from its event log.

The Automation API's `Stack.up()` runs `stack select` before and `stack output` (twice) and
`stack history` after the operation; a fleet run uses none of that, and it cost about 1.5 s per
stack (`bench/onboarding.py`). So the fleet runs the pinned CLI itself and reads what it needs, the
changed steps and the engine's counts, from the event log. Not through the Automation API's
`PulumiCommand` either: constructing one runs `pulumi version` (even with the version check
skipped), and importing `pulumi.automation` costs 0.26 s of CPU, a seventh of a no-op preview.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vaultfleet.fleet import danger
from vaultfleet.toolchain import find_tool, search_path

if TYPE_CHECKING:
    from pulumi import automation as auto

# Steps that change nothing, and the engine's own bookkeeping resources, are not shown.
_QUIET_OPS = {"same", "read", "refresh"}
# Set by `vaultfleet adopt` for the program it runs: a JSON file of the objects to import
# (vaultfleet/program/adoption.py reads it).
ADOPT_IDS_ENV = "VAULTFLEET_ADOPT_IDS"


@dataclass
class EngineRun:
    changes: dict[str, int] = field(default_factory=dict)
    """Operation -> count, as the engine's summary reports them (create, update, delete, same...)."""
    steps: list[dict] = field(default_factory=list)
    """One entry per resource that changes: op, type, name, drift (its refresh found it changed
    or gone out of band, so the step puts back what the stack file says), diffs, and danger (why
    the step is dangerous, fleet/danger.py; None for the others)."""
    dangerous: list[danger.DangerousStep] = field(default_factory=list)
    """The dangerous steps, with their URNs."""
    errors: list[tuple[str | None, str]] = field(default_factory=list)
    """The run's error diagnostics: (URN of the resource, or None for the run's own), message."""


class CommandError(Exception):
    """A `pulumi` command exited non-zero; its text is the Automation API's CommandError's."""

    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr
        self.run: EngineRun | None = None
        """What the failed operation's event log says (`run_operation`): a preview that `protect`
        stopped still reports every step it planned."""
        super().__init__(f"\n code: {exit_code}\n stdout: {stdout}\n stderr: {stderr}")


@dataclass
class CommandOutput:
    stdout: str
    stderr: str


def run_pulumi(args: list[str], cwd: Path | str, env: dict[str, str]) -> CommandOutput:
    """`pulumi ARGS` with the pinned engine, non-interactive; raises CommandError on failure."""
    binary = find_tool("pulumi")
    argv = [binary, *args]
    if "--non-interactive" not in argv:
        argv.append("--non-interactive")
    # As the Automation API runs it: never prompting or paging, and with the engine's own directory
    # (where its language host is) first on PATH.
    path = os.pathsep.join([str(Path(binary).resolve().parent), env.get("PATH", "")])
    out = subprocess.run(
        argv,
        cwd=cwd,
        env={**env, "PULUMI_AUTOMATION_API": "true", "PATH": path},
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise CommandError(out.returncode, out.stdout, out.stderr)
    return CommandOutput(out.stdout, out.stderr)


@functools.cache
def pulumi_command() -> auto.PulumiCommand:
    """The pinned engine as the Automation API's `PulumiCommand` (for tests and scripts that want a
    `Stack` object; fleet runs use `run_pulumi`), never a download."""
    from pulumi import automation as auto

    binary = Path(find_tool("pulumi"))
    return auto.PulumiCommand(root=str(binary.resolve().parent.parent), skip_version_check=True)


def engine_env() -> dict[str, str]:
    """The caller's environment plus offline engine settings and the tool cache on PATH."""
    return {
        **os.environ,
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PATH": search_path(),
    }


def state_key_env(env: dict[str, str], secrets_provider: str | None, vault_address: str | None) -> dict[str, str]:
    """`env` plus what Pulumi's hashivault:// secrets provider reads (VAULT_SERVER_URL and
    VAULT_SERVER_TOKEN), from the fleet's Vault address and the caller's VAULT_TOKEN unless set."""
    if not (secrets_provider or "").startswith("hashivault://") or not vault_address:
        return env
    extra = {"VAULT_SERVER_URL": vault_address}
    if env.get("VAULT_TOKEN"):
        extra["VAULT_SERVER_TOKEN"] = env["VAULT_TOKEN"]
    return {**env, **{k: v for k, v in extra.items() if not env.get(k)}}


def select_stack(name: str, work_dir: Path, env: dict[str, str]) -> auto.Stack:
    """Create or select stack `name` of the project in `work_dir` through the Automation API
    (for tests and scripts that want a `Stack` object; the fleet runs `run_operation`)."""
    from pulumi import automation as auto

    return auto.create_or_select_stack(
        stack_name=name,
        work_dir=str(work_dir),
        opts=auto.LocalWorkspaceOptions(env_vars=env, pulumi_command=pulumi_command()),
    )


# The commands that run the program or read the stack's config: an access stack's is its cluster's file.
_READS_CONFIG = {"preview", "up", "destroy", "refresh", "import"}


def cli(
    project: Path, stack: str, env: dict[str, str], config_args: list[str] | None = None
) -> Callable[[list[str]], object]:
    """`pulumi ARGS --stack STACK` in the project, with the fleet's environment; raises CommandError.
    `config_args` (StackFile.config_file_args) go to the commands that read the stack's config."""

    def run_cli(args: list[str]) -> CommandOutput:
        extra = (config_args or []) if args and args[0] in _READS_CONFIG and "--config-file" not in args else []
        return run_pulumi([*args, *extra, "--stack", stack], project, env)

    return run_cli


def run_operation(
    project: Path,
    stack: str,
    env: dict[str, str],
    args: list[str],
    secrets_provider: str | None = None,
    new: bool = False,
    config_args: list[str] | None = None,
) -> EngineRun:
    """Run `pulumi ARGS` (preview, up, destroy) on the stack, creating the stack when it is new
    (with the stack file's `secretsprovider`: `stack init` does not read it from the file).
    `new`: the caller knows the stack does not exist yet, so it is created first. `config_args`:
    `--config-file <its cluster's file>` for an access stack (StackFile.config_file_args)."""
    run_cli = cli(project, stack, {**env, "PULUMI_DEBUG_COMMANDS": "true"})  # enables --event-log

    def init() -> None:  # a new cluster's first preview or up
        # `stack init` writes the new stack's own file (its salt or data key); an access stack reads
        # its cluster's file instead, so that one goes again: onboarding stays one file.
        written = project / "stacks" / f"Pulumi.{stack}.yaml"
        left_alone = not config_args or written.exists()
        try:
            run_cli(["stack", "init", *(["--secrets-provider", secrets_provider] if secrets_provider else [])])
        except CommandError as exc:
            if "already exists" not in str(exc):  # another runner, or a retry, created it first
                raise
        finally:
            if not left_alone:
                written.unlink(missing_ok=True)

    with tempfile.TemporaryDirectory(prefix="vaultfleet-") as tmp:
        log = Path(tmp) / "events.jsonl"
        command = [*args, *(config_args or []), "--non-interactive", "--color", "never", "--event-log", str(log)]
        if new:
            init()

        def run() -> None:
            try:
                run_cli(command)
            except CommandError as exc:
                if "no stack named" not in str(exc):
                    raise
                init()
                run_cli(command)

        try:
            run()
        except CommandError as exc:
            exc.run = _read_events(_events(log))  # a preview `protect` stopped still lists its plan
            raise
        return _read_events(_events(log))


def _events(log: Path) -> list[dict]:
    """The event log's events; none when the engine stopped before opening it, and without a last
    line a killed engine cut short."""
    if not log.exists():
        return []
    events = []
    for line in log.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


# A provider input that names where the caller's credentials are, not what the stack makes: the
# kubernetes provider records $KUBECONFIG's path, so a preview with another kubeconfig (the
# previewer's) would show an update of the provider, and nothing else would change.
_CALLER_ONLY_PROVIDER_INPUTS = {"kubeconfig"}


def _read_events(events: list[dict]) -> EngineRun:
    result = EngineRun()
    drifted = _drifted(events)
    leaving = danger.leaving_mounts((e.get("resourcePreEvent") or {}).get("metadata") or {} for e in events)
    caller_only = 0
    for event in events:
        if "summaryEvent" in event:
            result.changes = dict(event["summaryEvent"].get("resourceChanges") or {})
        meta = (event.get("resourcePreEvent") or {}).get("metadata")
        if (
            meta
            and meta.get("op") == "update"
            and meta.get("type", "").startswith("pulumi:providers:")
            and set(meta.get("diffs") or ()) <= _CALLER_ONLY_PROVIDER_INPUTS
            and meta.get("diffs")
        ):
            caller_only += 1
        diagnostic = event.get("diagnosticEvent") or {}
        if diagnostic.get("severity") == "error":
            result.errors.append((diagnostic.get("urn") or None, diagnostic.get("message", "")))
        if meta and meta.get("op") not in _QUIET_OPS and not meta.get("type", "").startswith("pulumi:"):
            name, diffs = meta["urn"].rsplit("::", 1)[-1], _changed_properties(meta)
            why = danger.reason(meta["op"], meta["type"], meta.get("old"), meta.get("new"), diffs, leaving)
            result.steps.append(
                {
                    "op": meta["op"],
                    "type": meta["type"],
                    "name": name,
                    "drift": meta["urn"] in drifted,
                    "diffs": diffs,
                    "danger": why,
                }
            )
            if why:
                result.dangerous.append(danger.DangerousStep(meta["urn"], meta["op"], meta["type"], name, why))
    if caller_only and result.changes.get("update", 0) >= caller_only:
        result.changes["update"] -= caller_only
        result.changes["same"] = result.changes.get("same", 0) + caller_only
        if not result.changes["update"]:
            del result.changes["update"]
    return result


def _changed_properties(meta: dict) -> list[str]:
    """The top-level inputs a step changes: the engine's `diffs`, and the paths of the provider's
    detailed diff (the Kubernetes provider reports only those)."""
    found = set(meta.get("diffs") or ())
    found |= {re.split(r"[.\[]", path, maxsplit=1)[0] for path in (meta.get("detailedDiff") or {})}
    return sorted(found)


def _drifted(events: list[dict]) -> set[str]:
    """URNs whose refresh found them changed or gone out of band: the engine reports each refresh
    step's result with the keys that differ (`diffs`), and no `new` state when the object is gone."""
    found = set()
    for event in events:
        meta = (event.get("resOutputsEvent") or {}).get("metadata") or {}
        if meta.get("op") == "refresh" and (meta.get("new") is None or meta.get("diffs") or meta.get("detailedDiff")):
            found.add(meta["urn"])
    return found


def backend_url(project: Path, env: dict[str, str]) -> str:
    if env.get("PULUMI_BACKEND_URL"):
        return env["PULUMI_BACKEND_URL"]
    return _whoami_url(project, frozenset(env.items()))


@functools.cache
def _whoami_url(project: Path, env: frozenset[tuple[str, str]]) -> str:
    # Once per process and environment: a fleet run asks for every stack.
    return json.loads(run_pulumi(["whoami", "--json"], project, dict(env)).stdout).get("url", "")
