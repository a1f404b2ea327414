"""Which stacks a git diff touches: their own stack file, or anything every stack's program reads;
and the shared stack whenever any stack file changed (per-cluster layout: whenever one was added or
removed, and a cluster's access stack with its cluster's file)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from vaultfleet.stackfile import Project


def changed_since(project: Project, ref: str) -> list[str]:
    """Stacks affected by the git diff from `ref` to the working tree (untracked files included)."""
    changed = changed_files(project, ref)
    stacks = set(project.stack_names())
    if any(project.touches_every_stack(f) for f in changed):
        return project.all_stack_names()
    touched = {
        Path(f).name[len("Pulumi.") : -len(".yaml")]: how
        for f, how in changed.items()
        if f.startswith("stacks/Pulumi.")
    }
    if not touched:
        return []
    selected = set(touched) & stacks
    if project.per_cluster:
        # The shared stack names every cluster (its pipeline identities' policies): it runs when a
        # file comes or goes. A cluster's own file runs its access stack and its stack.
        shared = {s.name for s in project.stacks(sorted(selected)) if s.is_shared} if selected else set()
        if any(how in ("A", "D") for how in touched.values()):
            shared |= {s.name for s in project.shared_stacks()}
        return sorted(shared | set(project.access_stack_names(sorted(selected - shared))) | selected)
    # Any stack file counts for the shared stack: it writes each cluster's mount, policies and
    # applier policy from the cluster's file (and removes a deleted file's).
    return sorted(selected | {s.name for s in project.shared_stacks()})


def deleted_since(project: Project, ref: str) -> list[str]:
    """The stacks whose file the diff from `ref` deletes."""
    return sorted(
        Path(f).name[len("Pulumi.") : -len(".yaml")]
        for f, how in changed_files(project, ref).items()
        if how == "D" and f.startswith("stacks/Pulumi.") and f.endswith(".yaml")
    )


def changed_files(project: Project, ref: str) -> dict[str, str]:
    """Project-relative path -> git's status letter (A added, D deleted, M modified, ...), untracked
    files as added."""
    root = project.root
    revision = commit(root, ref)
    diff = subprocess.run(
        ["git", "diff", "--name-status", "--no-renames", "-z", revision, "--", "."],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if diff.returncode != 0:
        raise ValueError(f"git diff {ref} failed: {diff.stderr.strip()}")
    untracked = subprocess.run(
        ["git", "ls-files", "-z", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    # git prints paths relative to the repository root; make them relative to the project.
    top = Path(
        subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True).stdout.strip()
    )
    changed = {}
    # -z: paths as they are (git quotes a name with non-ASCII bytes otherwise); status, path, ...
    fields = diff.stdout.split("\0")
    for status, name in zip(fields[::2], fields[1::2], strict=False):
        if name and (top / name).is_relative_to(root):
            changed[str((top / name).relative_to(root))] = status[:1]
    changed |= {name: "A" for name in untracked.split("\0") if name}
    return changed


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
