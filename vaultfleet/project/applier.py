"""The applier policy of one cluster (`vaultfleet-apply-<cluster>`): what the identity that applies
cluster X's stack may write in Vault, pinned to X's reviewed stack file. The privileged shared stack
renders and writes it, beside X's mount and policy bodies.

It may write X's mount config with exactly the reviewed API host, CA and issuer (any reviewer JWT:
that one comes from the cluster), and X's roles, each attaching exactly its reviewed policies; it
may delete X's roles and read both. Nothing else: no policy body, no other mount, no other cluster,
no token. Both servers (OpenBao 2.4.0, HashiCorp Vault 1.14.1) enforce `allowed_parameters` on
strings, booleans and lists alike by comparing the whole value with each allowed one (a list is not
checked element by element), and deny every parameter a rule with `allowed_parameters` does not
list: so a role's `token_policies` is allowed as each order of its exact list (the provider sends a
set), and the legacy `policies`, `token_period` and the like are refused.
"""

from __future__ import annotations

import json
from itertools import permutations

from vaultfleet.project.pipeline import APPLIER_PREFIX, TRANSIT_MOUNT, applier_policy_name
from vaultfleet.project.schema import ClusterStack

__all__ = ["APPLIER_PREFIX", "applier_policy_name", "applier_rules", "render_applier"]


def applier_rules(stack: ClusterStack, host: str, ca_pem: str) -> list[tuple[str, list[str], dict | None]]:
    """(path, capabilities, allowed_parameters or None) of `vaultfleet-apply-<cluster>`."""
    mount = stack.mount_path
    issuer = stack.cluster.issuer
    config = {
        "kubernetes_host": [host],
        "kubernetes_ca_cert": [ca_pem],
        # reviewer-token: any (the reviewer's token, read from the cluster); client-jwt: none, ever.
        "token_reviewer_jwt": [] if stack.cluster.auth_mode == "reviewer-token" else [""],
        "pem_keys": [""],
        "issuer": [issuer or ""],
        "disable_iss_validation": [issuer is None],
        # Off: ServiceAccount annotations would otherwise fill the alias metadata the namespace-scoped
        # policies template on.
        "use_annotations_as_alias_metadata": [False],
    }
    if stack.cluster.auth_mode == "client-jwt":
        config["disable_local_ca_jwt"] = [True]  # Vault reviews with the client's token, never its own
    if stack.cluster.auth_mode == "jwt":
        return _jwt_rules(stack)
    rules: list[tuple[str, list[str], dict | None]] = [
        (f"auth/{mount}/config", ["create", "update", "read"], config),
        # Roles the stack file no longer declares can still be removed (and read back); written only below.
        (f"auth/{mount}/role/*", ["read", "delete", "list"], None),
        (f"auth/{mount}/role", ["list"], None),
    ]
    rules += _state_key_rules(stack)
    for role in stack.roles:
        names = [stack.policy_name(t) for t in role.policies]
        params = {
            "token_policies": [list(order) for order in permutations(names)],
            "bound_service_account_names": [],
            "bound_service_account_namespaces": [],
            "bound_service_account_namespace_selector": [""],
            "audience": [],
            "alias_name_source": [],
            "token_ttl": [],
            "token_max_ttl": [],
            "token_type": [],
            "token_no_default_policy": [],
        }
        rules.append((f"auth/{mount}/role/{role.name}", ["create", "update", "read", "delete"], params))
    return rules


def _jwt_rules(stack: ClusterStack) -> list[tuple[str, list[str], dict | None]]:
    """jwt mode: the config with any keys (they come from the cluster's JWKS, like a reviewer JWT)
    and the stack file's issuer when it names one; each role exactly as project/jwt_roles.py
    renders it but its TTLs (numbers cannot be pinned on either server)."""
    from vaultfleet.project.jwt_roles import role_body

    mount = stack.mount_path
    config = {"jwt_validation_pubkeys": [], "bound_issuer": [stack.cluster.issuer] if stack.cluster.issuer else []}
    rules: list[tuple[str, list[str], dict | None]] = [
        (f"auth/{mount}/config", ["create", "update", "read"], config),
        (f"auth/{mount}/role/*", ["read", "delete", "list"], None),
        (f"auth/{mount}/role", ["list"], None),
        *_state_key_rules(stack),
    ]
    for role in stack.roles:
        body = role_body(stack, role)
        pinned = {key: [value] for key, value in body.items() if key not in ("token_ttl", "token_max_ttl")}
        rules.append(
            (
                f"auth/{mount}/role/{role.name}",
                ["create", "update", "read", "delete"],
                {**pinned, "token_ttl": [], "token_max_ttl": []},
            )
        )
    return rules


def _state_key_rules(stack: ClusterStack) -> list[tuple[str, list[str], dict | None]]:
    if not stack.state_key:
        return []
    # The stack's own state key: wrap a new data key (`stack init`, and each run whose stack file
    # holds no `encryptedkey`) and unwrap it. Not its key material, rotation or config.
    return [(f"{TRANSIT_MOUNT}/{op}/{stack.state_key}", ["update"], None) for op in ("encrypt", "decrypt")]


def render_applier(stack: ClusterStack, host: str, ca_pem: str) -> str:
    """The HCL of `vaultfleet-apply-<cluster>` for the endpoint the cluster stack configures."""
    header = f"# Written by the shared stack from stacks/Pulumi.{stack.name}.yaml; regenerated on every change.\n"
    return "\n".join([header, *(_path(*rule) for rule in applier_rules(stack, host, ca_pem))])


def _path(path: str, capabilities: list[str], allowed: dict | None = None) -> str:
    lines = [f'path "{path}" {{', f"  capabilities = {json.dumps(capabilities)}"]
    if allowed is not None:
        lines.append("  allowed_parameters = {")
        lines += [f"    {json.dumps(key)} = {_hcl(values)}" for key, values in allowed.items()]
        lines.append("  }")
    lines.append("}\n")
    return "\n".join(lines)


def _hcl(value) -> str:
    """A value in HCL: JSON for scalars and lists, `{"k" = v}` for maps (a map in a policy's
    allowed_parameters must be written so; JSON's `:` does not parse there)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_hcl(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_hcl(v) for v in value) + "]"
    return json.dumps(value)
