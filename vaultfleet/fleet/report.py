"""What `vaultfleet preview | up | destroy` print for a fleet run's results, in each output format."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vaultfleet.fleet.runner import StackResult

OPERATIONS = ("create", "update", "delete", "replace")


def summary(results: list[StackResult], output: str, extra: dict[str, dict] | None = None) -> str:
    """The results as `output` says: json (every field), markdown (a table for a pull request
    comment, each failure's error folded) or text (a block per stack, drift marked as such).
    `extra`: more JSON fields per stack name (preview's access review)."""
    if output == "json":
        return json.dumps(
            [
                {
                    "stack": r.stack,
                    "operation": r.operation,
                    "ok": r.ok,
                    "changed": r.changed,
                    "changes": r.changes,
                    "steps": r.steps,
                    "error": r.error,
                    "recovered": r.recovered,
                    "unchanged": r.unchanged,
                    "refused": r.refused,
                    "seconds": r.seconds,
                    **(extra or {}).get(r.stack, {}),
                }
                for r in results
            ],
            indent=2,
        )
    ops = OPERATIONS
    if output == "markdown":
        lines = ["| stack | result | " + " | ".join(ops) + " | what changes |", "|---|---|" + "---|" * (len(ops) + 1)]
        for r in results:
            what = "<br>".join(
                f"`{s['op']}` {s['type'].split(':')[-1]} `{s['name']}`"
                + (" (drift)" if s.get("drift") else "")
                + (f" :warning: **dangerous**: {s['danger']}" if s.get("danger") else "")
                for s in r.steps
            )
            what = what or ("unchanged since its last up (engine not run)" if r.unchanged else "-")
            state = "ok" if r.ok else "**failed**"
            lines.append(
                f"| {r.stack} | {state} | " + " | ".join(str(r.changes.get(o, 0)) for o in ops) + f" | {what} |"
            )
        lines += [f"\n_{r.stack}: {r.recovered}_" for r in results if r.recovered]
        lines += [f"\n:warning: **{r.stack}**: {_dangerous_note(r)}" for r in results if _dangerous_note(r)]
        failed = [r for r in results if not r.ok]
        for r in failed:
            lines += [
                "",
                f"<details><summary>{r.stack}: error</summary>",
                "",
                "```",
                r.error or "",
                "```",
                "</details>",
            ]
        return "\n".join(lines)
    lines = []
    for r in results:
        counts = ", ".join(f"{o} {r.changes[o]}" for o in ops if r.changes.get(o)) or "no changes"
        drift = sum(1 for s in r.steps if s.get("drift"))
        counts += f"; {drift} of them put back what changed out of band (drift)" if drift else ""
        head = f"{r.stack}: {'ok' if r.ok else 'FAILED'} ({r.seconds}s) {counts if r.ok else ''}".rstrip()
        lines.append(head)
        if r.recovered:
            lines.append(f"    {r.recovered}")
        if r.unchanged:
            lines.append(f"    {r.unchanged}")
        lines += [
            f"    {s['op']:<8} {s['type']}  {s['name']}"
            + ("  (drift: changed out of band)" if s.get("drift") else "")
            + (f"  DANGEROUS: {s['danger']}" if s.get("danger") else "")
            for s in r.steps
        ]
        if _dangerous_note(r):
            lines.append(f"    {_dangerous_note(r)}")
        if r.error:
            lines += ["    " + ln for ln in r.error.splitlines()]
    return "\n".join(lines)


def _dangerous_note(r: StackResult) -> str | None:
    """What the stack's dangerous steps mean for its `up` (fleet/danger.py); None without any. A
    refused `up` says it in its error."""
    count = sum(1 for s in r.steps if s.get("danger"))
    if not count or not r.ok:
        return None
    steps = f"{count} dangerous step{'s' if count > 1 else ''}"
    if r.operation == "preview":
        return f"{steps}: `vaultfleet up` refuses them unless run with `--allow-dangerous {r.stack}`"
    if r.operation == "up":
        return f"{steps} applied (--allow-dangerous {r.stack})"
    return None
