"""Which stacks a git diff touches: their own stack file, or anything every stack's program reads;
and the shared stack whenever any stack file changed."""

from __future__ import annotations

import subprocess
from pathlib import Path

from vaultfleet.stackfile import Project


def changed_since(project: Project, ref: str) -> list[str]:
    """Stacks affected by the git diff from `ref` to the working tree (untracked files included)."""
    root = project.root
    revision = commit(root, ref)
    diff = subprocess.run(
        ["git", "diff", "--name-only", revision, "--", "."], cwd=root, capture_output=True, text=True, check=False
    )
    if diff.returncode != 0:
        raise ValueError(f"git diff {ref} failed: {diff.stderr.strip()}")
    untracked = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard"], cwd=root, capture_output=True, text=True, check=False
    ).stdout
    # git prints paths relative to the repository root; make them relative to the project.
    top = Path(
        subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True).stdout.strip()
    )
    files = [str((top / f).relative_to(root)) for f in diff.stdout.split() if (top / f).is_relative_to(root)]
    files += untracked.split()
    stacks = set(project.stack_names())
    if any(project.touches_every_stack(f) for f in files):
        return sorted(stacks)
    touched = {Path(f).name[len("Pulumi.") : -len(".yaml")] for f in files if f.startswith("stacks/Pulumi.")}
    if touched:
        # Any stack file counts for the shared stack: it writes each cluster's mount, policies and
        # applier policy from the cluster's file (and removes a deleted file's).
        touched |= {s.name for s in project.shared_stacks()}
    return sorted(touched & stacks)


def commit(root: Path, ref: str) -> str:
    """The commit `ref` names, resolved so that git can never read it as an option (`--output=...`)."""
    if not ref or ref.startswith("-") or any(not ch.isprintable() for ch in ref):
        raise ValueError(f"--changed-since {ref!r} is not a git revision")
    found = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        raise ValueError(f"--changed-since {ref!r}: no such commit in {root}")
    return found.stdout.strip()
