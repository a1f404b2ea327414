"""The preview skip: a stack whose inputs and state are exactly as its last successful `up` left
them cannot show a change in a plain preview, so the engine need not run.

The program exports the digest of the inputs it ran with (vaultfleet/project/inputs.py);
`vaultfleet preview` computes it again from the files and compares it with the state's, after
checking that nothing wrote the state since that update.
"""

from __future__ import annotations

import json
from datetime import datetime

from vaultfleet.fleet import engine, recovery
from vaultfleet.project import Project
from vaultfleet.project.inputs import OUTPUT, inputs_fingerprint


def unchanged_since_last_up(
    project: Project, stack_name: str, env: dict[str, str]
) -> tuple[str, dict[str, int]] | None:
    """(why, counts) when a plain preview of the stack cannot show a change: its last history entry
    is a successful update, nothing wrote the state after it (no refresh, crash or state edit), and
    the program's inputs are exactly those that update ran with. None otherwise (or when in doubt):
    the engine runs.

    Two quick CLI reads (about a tenth of a preview's CPU) instead of running the program and both
    providers. `--refresh` (drift) and `--full` always run the engine.
    """
    from pulumi.automation import CommandError

    run_cli = engine.cli(project.root, stack_name, env)
    try:
        history = json.loads(run_cli(["stack", "history", "--json", "--page-size", "1"]).stdout or "[]")
        if not history or history[0].get("kind") != "update" or history[0].get("result") != "succeeded":
            return None
        state = recovery.plain_export(run_cli).get("deployment") or {}
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
    if (root.get("outputs") or {}).get(OUTPUT) != inputs_fingerprint(project.stack(stack_name)):
        return None
    # As a preview would count them: every resource in the state is "same".
    same = len(state.get("resources") or [])
    return f"inputs and state as the update of {last.get('endTime')} left them; engine not run", {"same": same}


def _timestamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
