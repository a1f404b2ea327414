"""The applier policy of one cluster (`vaultfleet-apply-<cluster>`): what the identity that applies
cluster X's stack may write in Vault, pinned to X's reviewed stack file. The privileged shared stack
renders and writes it, beside X's mount and policy bodies.

It may write X's mount config with exactly the reviewed API host, CA and issuer (any reviewer JWT:
that one comes from the cluster; in jwt mode exactly the keys the shared stack read from the
cluster's JWKS), and X's roles, each exactly as reviewed in everything that decides who logs in and
what the token is: bindings, audience, policies, token type, alias name source. Only the TTLs are
free (numbers cannot be pinned); the shared stack caps them with the mount's tuned max TTL. It may
delete X's roles and read both. Nothing else: no policy body, no other mount, no other cluster, no
token.

Both servers (OpenBao 2.4.0, HashiCorp Vault 1.14.1) enforce `allowed_parameters` on strings,
booleans and lists alike by comparing the whole value with each allowed one (a list is not checked
element by element, and a comma-separated string is not a list), and deny every parameter a rule
with `allowed_parameters` does not list: so the legacy `policies`, `token_period`,
`token_bound_cidrs` and the like are refused. The provider sends a role's set-valued fields in the
Terraform SDK's set order (`set_order`), so each list is allowed in exactly that order.

What a policy cannot do: require a parameter on a path it must also let the applier read (both
servers apply `required_parameters` to reads too). So an applier that deletes a declared role and
creates it again may leave out its `audience` (Vault's default: any); the bindings stay pinned, and
the schema keeps every role away from the reviewer's ServiceAccount, so the reviewer JWT the applier
can decrypt logs in nowhere. The next refreshing preview shows the drift and `up` puts it back.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable

from vaultfleet.stackfile import stack_file_name
from vaultfleet.stackfile.pipeline import APPLIER_PREFIX, TRANSIT_MOUNT, applier_policy_name
from vaultfleet.stackfile.schema import ClusterStack

__all__ = [
    "APPLIER_PREFIX",
    "applier_paths",
    "applier_policy_name",
    "applier_rules",
    "render_applier",
    "set_order",
]

# Vault's default alias name source for a kubernetes role; the namespace templates rely on it.
ALIAS_NAME_SOURCE = "serviceaccount_uid"

Rule = tuple[str, list[str], "dict | None"]


def set_order(values: Iterable[str]) -> list[str]:
    """A set of strings in the order the provider sends it: the Terraform SDK lists a set by its
    elements' hash codes sorted as decimal strings (helper/schema/set.go), and hashes a string
    element as the CRC-32 of the string followed by ";" (serialize.go, SerializeValueForHash)."""
    return sorted(set(values), key=lambda value: str(zlib.crc32(f"{value};".encode())))


def applier_rules(
    stack: ClusterStack, host: str, ca_pem: str, jwt_issuer: tuple[str, list[str]] | None = None
) -> list[Rule]:
    """(path, capabilities, allowed_parameters or None) of `vaultfleet-apply-<cluster>`.

    `jwt_issuer` is jwt mode's (issuer, PEM keys) as the privileged stage read them from the cluster;
    required in jwt mode."""
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
        if jwt_issuer is None:
            raise ValueError(f"{stack.name}: jwt mode's applier policy pins the cluster's issuer keys: none were read")
        return _jwt_rules(stack, *jwt_issuer)
    rules: list[Rule] = [
        (f"auth/{mount}/config", ["create", "update", "read"], config),
        # Roles the stack file no longer declares can still be removed (and read back); written only below.
        (f"auth/{mount}/role/*", ["read", "delete", "list"], None),
        (f"auth/{mount}/role", ["list"], None),
    ]
    rules += _state_key_rules(stack)
    for role in stack.roles:
        params = {
            "token_policies": [set_order(stack.token_policies(role))],
            "bound_service_account_names": [set_order(role.service_accounts)],
            "bound_service_account_namespaces": [set_order(role.namespaces)],
            "bound_service_account_namespace_selector": [""],
            # The provider sends "" to clear an audience; a role without one is written without it.
            "audience": [role.audience or ""],
            "alias_name_source": [ALIAS_NAME_SOURCE],
            "token_type": [role.token_type],
            "token_no_default_policy": [False],
            # Free: numbers cannot be pinned; the mount's max TTL (tuned by the shared stack) caps them.
            "token_ttl": [],
            "token_max_ttl": [],
        }
        rules.append((f"auth/{mount}/role/{role.name}", ["create", "update", "read", "delete"], params))
    return rules


def applier_paths(stack: ClusterStack) -> list[tuple[str, list[str]]]:
    """(path, capabilities) of `vaultfleet-apply-<cluster>`: what `vaultfleet access` lists. They do
    not depend on the pinned values, so no endpoint or key is read."""
    return [(path, caps) for path, caps, _ in applier_rules(stack, "", "", ("", []))]


def _jwt_rules(stack: ClusterStack, issuer: str, keys: list[str]) -> list[Rule]:
    """jwt mode: the config exactly as render/jwt_roles.py renders it from the issuer and keys the
    privileged stage read (a rotated key goes through it: the applier cannot write one of its own and
    sign logins with it); each role exactly as rendered but its TTLs (numbers cannot be pinned)."""
    from vaultfleet.render.jwt_roles import config_body, role_body

    mount = stack.mount_path
    config = {key: [value] for key, value in config_body(issuer, keys).items()}
    rules: list[Rule] = [
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


def _state_key_rules(stack: ClusterStack) -> list[Rule]:
    if not stack.state_key:
        return []
    # The stack's own state key: wrap a new data key (`stack init`, and each run whose stack file
    # holds no `encryptedkey`) and unwrap it. Not its key material, rotation or config.
    return [(f"{TRANSIT_MOUNT}/{op}/{stack.state_key}", ["update"], None) for op in ("encrypt", "decrypt")]


def _no_globs(stack: ClusterStack, rules: list[Rule]) -> list[Rule]:
    """Both servers read a pinned string with a leading or trailing `*` as a glob (strutil's
    GlobbedStringsMatch), which would let the applier write any value it matches: refused."""
    for path, _, allowed in rules:
        for key, values in (allowed or {}).items():
            for value in values:
                if isinstance(value, str) and len(value) > 1 and (value.startswith("*") or value.endswith("*")):
                    raise ValueError(
                        f"{stack_file_name(stack.name)}: {key} {value!r} ({path}) starts or ends with '*': "
                        "Vault would read it as a glob in the applier policy"
                    )
    return rules


def render_applier(stack: ClusterStack, host: str, ca_pem: str, jwt_issuer: tuple[str, list[str]] | None = None) -> str:
    """The HCL of `vaultfleet-apply-<cluster>` for the endpoint the cluster stack configures."""
    header = f"# Written by the shared stack from stacks/Pulumi.{stack.name}.yaml; regenerated on every change.\n"
    rules = _no_globs(stack, applier_rules(stack, host, ca_pem, jwt_issuer))
    return "\n".join([header, *(_path(*rule) for rule in rules)])


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
