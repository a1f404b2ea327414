"""The consumer objects a stack file asks `up` to create (roles[].consumers): program-time code."""

from __future__ import annotations

from vaultfleet.consumers.bindings import bindings
from vaultfleet.consumers.eso import eso_store
from vaultfleet.consumers.vso import vso_auth
from vaultfleet.render.policy import PathRule
from vaultfleet.stackfile.schema import ClusterStack


def managed_objects(stack: ClusterStack, rules: dict[str, list[PathRule]]) -> list[dict]:
    """The consumer objects a stack file asks `up` to create (roles[].consumers), each once;
    `rules` are the stack's rendered policies' rules (the program renders them once per run).

    Only what logs in (stores, connections, auths): which secrets to sync is the workloads' business.
    They log in with the stack's auth method (jwt mode: external-secrets auth.jwt, VSO method jwt).
    """
    objects: dict[tuple, dict] = {}
    for role in stack.roles:
        if not role.consumers:
            continue
        found, _ = bindings(stack, role=role.name, rules=rules)
        for binding in found:
            made = ([eso_store(binding)] if "eso" in role.consumers else []) + (
                vso_auth(binding) if "vso" in role.consumers else []
            )
            for o in made:
                # Roles in one namespace share its VaultConnection (same name, same content).
                key = (o["apiVersion"], o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
                objects.setdefault(key, o)
    return list(objects.values())
