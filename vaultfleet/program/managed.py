"""The consumer objects a stack file asks `up` to create (roles[].consumers): program-time code."""

from __future__ import annotations

from pathlib import Path

from vaultfleet.consumers.bindings import bindings
from vaultfleet.consumers.eso import eso_store
from vaultfleet.consumers.vso import vso_auth
from vaultfleet.render.policy import POLICY_DIR
from vaultfleet.stackfile.schema import ClusterStack


def managed_objects(stack: ClusterStack, policy_dir: Path = POLICY_DIR) -> list[dict]:
    """The consumer objects a stack file asks `up` to create (roles[].consumers), each once.

    Only what logs in (stores, connections, auths): which secrets to sync is the workloads' business.
    They log in with the stack's auth method (jwt mode: external-secrets auth.jwt, VSO method jwt).
    """
    objects: dict[tuple, dict] = {}
    for role in stack.roles:
        if not role.consumers:
            continue
        found, _ = bindings(stack, role=role.name, policy_dir=policy_dir)
        for binding in found:
            made = ([eso_store(binding)] if "eso" in role.consumers else []) + (
                vso_auth(binding) if "vso" in role.consumers else []
            )
            for o in made:
                # Roles in one namespace share its VaultConnection (same name, same content).
                key = (o["apiVersion"], o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
                objects.setdefault(key, o)
    return list(objects.values())
