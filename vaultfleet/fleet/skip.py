"""The preview skip: a `--no-refresh` preview of a stack whose inputs and state are exactly as
vaultfleet's last successful `up` left them cannot show a change, so the engine need not run.

What "exactly" covers, each compared with what was true right after that `up`:
- the program's inputs: its files, the stack file, the SDK versions, the kube context's endpoint
  (the program exports their digest, vaultfleet/fleet/inputs.py);
- the state itself: a digest of `pulumi stack export`, so a `state delete`, `stack import`,
  `state edit`, `state unprotect`, a refresh or a crash that wrote it all count;
- the engine and provider plugin binaries (path, size, modification time, inode: a rebuild at the
  same version counts) and every Python distribution installed in the project's virtualenv (its
  RECORD, which lists each file's hash).
The record of the last `up` is kept per backend, project and stack in vaultfleet's cache
($XDG_CACHE_HOME/vaultfleet/preview-skip): a machine that did not run that `up` (a fresh CI runner,
a plain `pulumi up` in between) has no matching record, and the engine runs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from vaultfleet.fleet import engine
from vaultfleet.fleet.inputs import OUTPUT, inputs_fingerprint
from vaultfleet.stackfile import Project
from vaultfleet.toolchain import MissingTool, find_tool

# The binaries a preview of this project runs: the engine, the language host and the two providers.
BINARIES = ("pulumi", "pulumi-language-python", "pulumi-resource-vault", "pulumi-resource-kubernetes")


def unchanged_since_last_up(
    project: Project, stack_name: str, env: dict[str, str]
) -> tuple[str, dict[str, int]] | None:
    """(why, counts) when a `--refresh=false` preview of the stack cannot show a change; None
    otherwise, or when in doubt: the engine runs.

    Two quick CLI reads (about a tenth of a preview's CPU) instead of running the program and both
    providers.
    """
    run_cli = engine.cli(project.root, stack_name, env)
    try:
        history = json.loads(run_cli(["stack", "history", "--json", "--page-size", "1"]).stdout or "[]")
        if not history or history[0].get("kind") != "update" or history[0].get("result") != "succeeded":
            return None
        exported = run_cli(["stack", "export"]).stdout or "{}"
        state = json.loads(exported).get("deployment") or {}
    except (engine.CommandError, ValueError):
        return None  # no such stack yet, or unreadable: let the engine say
    if state.get("pending_operations"):
        return None
    record = _read_record(_record_path(project, stack_name, env))
    if record is None or record != _record(project, exported, env):
        return None
    root = next((r for r in state.get("resources") or [] if r.get("type") == "pulumi:pulumi:Stack"), {})
    if (root.get("outputs") or {}).get(OUTPUT) != inputs_fingerprint(project.stack(stack_name)):
        return None
    # As a preview would count them: every resource in the state is "same".
    same = len(state.get("resources") or [])
    when = history[0].get("endTime")
    return f"inputs, state and toolchain as the update of {when} left them; engine not run", {"same": same}


def remember_up(project: Project, stack_name: str, env: dict[str, str]) -> None:
    """Record the state, toolchain and packages right after a successful `up` of the stack."""
    path = _record_path(project, stack_name, env)
    try:
        exported = engine.cli(project.root, stack_name, env)(["stack", "export"]).stdout or "{}"
    except engine.CommandError:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(_record(project, exported, env)))
    tmp.replace(path)


def forget(project: Project, stack_name: str, env: dict[str, str]) -> None:
    """After any other write (a failed up, a destroy): no skip until the next successful up."""
    _record_path(project, stack_name, env).unlink(missing_ok=True)


def _record(project: Project, exported: str, env: dict[str, str]) -> dict:
    return {
        "state": hashlib.sha256(exported.encode()).hexdigest(),
        "binaries": binaries_identity(env.get("PATH")),
        "packages": packages_digest(project.root / ".venv"),
    }


def _read_record(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _record_path(project: Project, stack_name: str, env: dict[str, str]) -> Path:
    backend = env.get("PULUMI_BACKEND_URL") or engine.backend_url(project.root, env)
    key = hashlib.sha256(f"{backend}\0{project.root}\0{project.name}\0{stack_name}".encode()).hexdigest()[:32]
    base = Path(env.get("XDG_CACHE_HOME") or Path(env.get("HOME") or Path.home()) / ".cache")
    return base / "vaultfleet" / "preview-skip" / f"{key}.json"


def binaries_identity(path: str | None = None) -> dict[str, list]:
    """Each binary a preview runs, as found on PATH (tool cache first): where it is and which file."""
    identity: dict[str, list] = {}
    for name in BINARIES:
        try:
            found = Path(find_tool(name) if path is None else _which(name, path)).resolve()
            st = found.stat()
        except (MissingTool, OSError):
            identity[name] = ["missing"]
            continue
        identity[name] = [str(found), st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev]
    return identity


def _which(name: str, path: str) -> str:
    import shutil

    found = shutil.which(name, path=path)
    if found is None:
        raise MissingTool(name)
    return found


def packages_digest(venv: Path) -> str:
    """Every distribution installed in the virtualenv: name, version and RECORD (each file's hash)."""
    digest = hashlib.sha256()
    for record in sorted(venv.glob("lib/python*/site-packages/*.dist-info/RECORD")):
        digest.update(f"{record.parent.name}\0".encode())
        digest.update(record.read_bytes())
    return digest.hexdigest()


__all__ = ["BINARIES", "binaries_identity", "forget", "packages_digest", "remember_up", "unchanged_since_last_up"]
