"""Which stacks a fleet command runs: named ones, all, those a git diff touches, one shard of them."""

from __future__ import annotations

from dataclasses import dataclass, field

from vaultfleet.fleet.changes import changed_since
from vaultfleet.fleet.shards import Shard
from vaultfleet.stackfile import Project


class SelectionError(ValueError):
    """Arguments that select nothing runnable (unknown stack, bad ref, bad shard): nothing was run."""


@dataclass(frozen=True)
class Selection:
    stacks: list[str]
    left_out_shared: list[str] = field(default_factory=list)
    """The privileged stacks a shard leaves out (the shared stack, and the per-cluster layout's
    access stacks): they are in no shard and run first, once, with the admin's token."""


def select(
    project: Project,
    stacks: list[str] | None,
    all_: bool,
    changed_since_ref: str | None = None,
    shard: str | None = None,
) -> Selection:
    names = _named(project, stacks, all_, changed_since_ref)
    if shard is None:
        return Selection(names)
    try:
        part = Shard.parse(shard)
    except ValueError as exc:
        raise SelectionError(str(exc)) from None
    # A shard runs with the cluster applier's token: the privileged stacks are the admin job's.
    privileged = [n for n in names if project.stack(n).is_shared or project.stack(n).is_access]
    return Selection(part.of([n for n in names if n not in privileged]), privileged)


def _named(project: Project, stacks: list[str] | None, all_: bool, ref: str | None) -> list[str]:
    if ref:
        try:
            return changed_since(project, ref)
        except ValueError as exc:
            raise SelectionError(str(exc)) from None
    if all_:
        return project.all_stack_names()
    if not stacks:
        raise SelectionError("name stacks, or use --all / --changed-since")
    unknown = [s for s in stacks if not project.knows(s)]
    if unknown:
        raise SelectionError(f"no stack file for {', '.join(unknown)} (known: {', '.join(project.all_stack_names())})")
    return stacks
