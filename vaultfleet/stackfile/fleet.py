"""Checks across the fleet's stack files that no single file can make: one auth mount per path."""

from __future__ import annotations

from collections.abc import Iterable

from vaultfleet.stackfile import stack_file_name
from vaultfleet.stackfile.schema import ClusterStack, SharedStack


def mount_conflicts(clusters: Iterable[ClusterStack], shared: SharedStack | None) -> list[tuple[str, str, str]]:
    """(file, field, message) for every cluster whose auth mount path another cluster, or the
    pipeline's jwt mount, already has. The shared stack refuses to run with one: a second cluster
    on a mount would get the first one's roles and config pinned in its applier policy."""
    users: dict[str, list[str]] = {}
    if shared is not None and shared.pipeline is not None:
        users[shared.pipeline.mount] = ["the shared stack's pipeline"]
    for stack in clusters:
        users.setdefault(stack.mount_path, []).append(f"stack '{stack.name}'")
    problems = []
    for stack in clusters:
        others = [u for u in users[stack.mount_path] if u != f"stack '{stack.name}'"]
        if others:
            field = "vaultfleet:cluster.mountPath" if stack.cluster.mount_path else "vaultfleet:mountPrefix"
            problems.append(
                (
                    stack_file_name(stack.name),
                    field,
                    f"mount path '{stack.mount_path}' is also used by {', '.join(others)}",
                )
            )
    return problems
