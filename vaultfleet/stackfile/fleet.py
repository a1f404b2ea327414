"""Checks across the fleet's stack files that no single file can make: one auth mount per path, one
cluster per policy name, and no cluster attaching another's policies by name. `validate` reports
them; the shared stack refuses to run with any, before registering anything."""

from __future__ import annotations

from collections.abc import Iterable

from vaultfleet.stackfile import stack_file_name
from vaultfleet.stackfile.schema import ClusterStack, SharedStack

Problem = tuple[str, str, str]


def fleet_conflicts(clusters: Iterable[ClusterStack], shared: SharedStack | None) -> list[Problem]:
    """(file, field, message) for each conflict between stack files."""
    clusters = list(clusters)
    return _mounts(clusters, shared) + _policy_names(clusters) + _existing_policies(clusters, shared)


def _mounts(clusters: list[ClusterStack], shared: SharedStack | None) -> list[Problem]:
    # A second cluster on a mount would get the first one's roles and config pinned in its
    # applier policy; the pipeline's jwt mount is an auth mount beside the clusters'.
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
            message = f"mount path '{stack.mount_path}' is also used by {', '.join(others)}"
            problems.append((stack_file_name(stack.name), field, message))
    return problems


def _policy_names(clusters: list[ClusterStack]) -> list[Problem]:
    # Two clusters rendering one name (cluster `lab` with template `kv-read`, cluster `lab-kv` with
    # `read`) would write one Vault policy in turn: each would get the other's paths.
    owners: dict[str, list[str]] = {}
    for stack in clusters:
        for template in stack.policies:
            owners.setdefault(stack.policy_name(template), []).append(stack.name)
    problems = []
    for stack in clusters:
        for i, template in enumerate(stack.policies):
            others = [o for o in owners[stack.policy_name(template)] if o != stack.name]
            if others:
                problems.append(
                    (
                        stack_file_name(stack.name),
                        f"vaultfleet:policies[{i}]",
                        f"renders policy '{stack.policy_name(template)}', which stack {', '.join(others)} renders too",
                    )
                )
    return problems


def _existing_policies(clusters: list[ClusterStack], shared: SharedStack | None) -> list[Problem]:
    # A policy attached by name may not be one the fleet writes, under any cluster's prefix: a file
    # that sets its own mountPrefix must not reach another cluster's policies that way.
    prefixes = {f"{s.fleet.mount_prefix}-" for s in clusters} | {"vaultfleet-"}
    if shared is not None:
        prefixes.add(f"{shared.fleet.mount_prefix}-")
    problems = []
    for stack in clusters:
        for i, role in enumerate(stack.roles):
            for j, name in enumerate(role.existing_policies):
                if name.startswith(tuple(prefixes)):
                    problems.append(
                        (
                            stack_file_name(stack.name),
                            f"vaultfleet:roles[{i}].existingPolicies[{j}]",
                            f"'{name}' is a name the fleet manages ({', '.join(sorted(p + '*' for p in prefixes))})",
                        )
                    )
    return problems


def neighbour_names(stack: ClusterStack, names: Iterable[str]) -> list[str]:
    """Of `names` (stack names), those whose cluster could collide with `stack` on a policy name or
    mount: a fleet name is `<prefix>-<cluster>[-<template>]`, so only a cluster whose name appears
    between dashes in one of this stack's names can (an access stack checks those, not the fleet)."""
    own = [stack.mount_path, *(stack.policy_name(t) for t in stack.policies)]
    own += [name for role in stack.roles for name in role.existing_policies]
    return [n for n in names if n != stack.name and any(f"-{n}-" in f"-{text}-" for text in own)]
