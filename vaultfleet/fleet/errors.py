"""From a failed engine run's text to the few lines a person needs: one per failing resource.

The engine prints each resource's diagnostics in a "Diagnostics:" section, as a header line
`  <type> (<name>):` followed by indented messages; a provider error spreads the useful part (the
Vault URL, the status code, the reason) over several lines after "Error making API request.".
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^  (?P<type>\S+) \((?P<name>[^)]+)\):$")
_SECTION_END = re.compile(r"^(Resources|Outputs|Duration):")
# Wrapper text that says nothing about the cause.
_NOISE = re.compile(r"^(sdk-v2/\S+: )?(sdk\.helper_schema: )?")
_GENERIC = (
    "an unhandled error occurred: program exited",
    "preview failed",
    "update failed",
    "destroy failed",
    "refresh failed",
)
# The program's traceback when the engine stopped it after another resource failed (engine 3.276 with
# SDK 3.272: the resource monitor shuts down while the program still registers, and the program is
# interrupted): it says nothing about the cause, which is in that resource's own diagnostics.
_TRACEBACK = "Traceback (most recent call last):"
_STOPPED_BY_ENGINE = ("KeyboardInterrupt", "Resource monitor has terminated", "StatusCode.UNAVAILABLE")


def summarise(text: str, limit: int = 12) -> str:
    """One line per resource that failed (and the program's own error lines), at most `limit`."""
    if "Diagnostics:" not in text:
        return _fallback(text, limit)
    body = text.split("Diagnostics:", 1)[1].splitlines()
    lines: list[str] = []
    header, block = None, []
    for raw in [*body, "Resources:"]:
        match = _HEADER.match(raw)
        if match or _SECTION_END.match(raw):
            lines += _block_lines(header, block)
            header, block = (f"{match['type']} ({match['name']})" if match else None), []
            if not match:
                break
            continue
        if raw.strip():
            block.append(raw.strip())
    return "\n".join(lines[:limit]) or _fallback(text, limit)


def _block_lines(header: str | None, block: list[str]) -> list[str]:
    if header is None:
        return []
    messages = [ln for ln in block if not ln.startswith("warning:")]
    if not any(ln.startswith("error:") for ln in messages):
        return []
    if header.startswith("pulumi:pulumi:Stack"):
        # The program's own errors (e.g. "stacks/Pulumi.x.yaml: vaultfleet:roles[0].ttl: ...").
        kept = [_NOISE.sub("", ln.removeprefix("error:").strip()) for ln in _without_engine_stop(messages)]
        return [ln for ln in kept if ln and not ln.startswith(_GENERIC)]
    first = next(ln for ln in messages if ln.startswith("error:"))
    parts = [_NOISE.sub("", first.removeprefix("error:").strip())]
    for ln in messages:
        leaf = ln.lstrip("* ").strip()
        if ln.startswith(("URL:", "Code:")) or (ln.startswith("*") and not re.match(r"\d+ errors? occurred", leaf)):
            parts.append(leaf if ln.startswith("*") else ln)
    seen: list[str] = []
    for part in parts:
        if part and part not in seen:
            seen.append(part)
    return [f"{header}: {' '.join(seen)}"]


def _without_engine_stop(messages: list[str]) -> list[str]:
    """The lines without each traceback (to the next error: line) that shows the engine stopping the
    program; a traceback of the program's own failure stays."""
    kept: list[str] = []
    traceback: list[str] = []
    for ln in [*messages, "error:"]:
        if ln == _TRACEBACK and not traceback:
            traceback = [ln]
        elif traceback and not ln.startswith("error:"):
            traceback.append(ln)
        else:
            if not any(mark in t for t in traceback for mark in _STOPPED_BY_ENGINE):
                kept += traceback
            traceback = []
            kept.append(ln)
    return kept[:-1]


def _fallback(text: str, limit: int) -> str:
    """No Diagnostics section (the engine stopped before running): its error lines, deduplicated."""
    lines = [ln.strip() for ln in text.splitlines()]
    useful = [ln for ln in lines if ln.startswith(("error:", "stacks/")) and not ln.startswith("error: " + _GENERIC[0])]
    seen: list[str] = []
    for ln in useful:
        if ln not in seen:
            seen.append(ln)
    return "\n".join(seen[:limit]) or text.strip()[-2000:]
