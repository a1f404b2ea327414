"""A jwt mount (Vault's jwt auth method checking the cluster's ServiceAccount tokens, as Terraform's
`vault_jwt_auth_backend` makes it) turned into a jwt-mode stack file, and what it cannot carry.

jwt mode writes its config and roles as exact request bodies (components/jwt_auth.py, generic
endpoints), which Pulumi cannot import: the import run writes them over what exists. So every
field the bodies carry is compared here with what Vault has (`add_body_differences`, once the
stack file is validated, from the same render/jwt_roles.py the program writes), and each one that
differs is listed for the admin to accept. A role write keeps the fields its body does not send,
and a config write resets them: a field outside the bodies that is set is refused (the stack file
would not say it, or the write would drop it), never silently kept or lost.
"""

from __future__ import annotations

from typing import Any

from vaultfleet.adopt.differences import Description, Difference
from vaultfleet.adopt.observe import Observed
from vaultfleet.render.jwt_roles import NAMESPACE_CLAIM, SERVICE_ACCOUNT_CLAIM, config_body, role_body
from vaultfleet.stackfile.schema import ClusterStack

# Config fields the format does not carry: logins depend on them, and the config write resets them.
_CONFIG_NOT_CARRIED = ("default_role", "jwt_supported_algs", "provider_config", "oidc_client_id", "jwks_pairs")
# Where the keys came from before; the written config carries the cluster's own keys instead.
_KEY_SOURCES = ("jwks_url", "jwks_ca_pem", "oidc_discovery_url", "oidc_discovery_ca_pem")
# Role fields the written body carries (render/jwt_roles.py), and the deprecated names Vault still
# returns for some of them.
_ROLE_CARRIED = {
    "role_type",
    "user_claim",
    "bound_audiences",
    "bound_claims",
    "bound_claims_type",
    "claim_mappings",
    "token_policies",
    "token_ttl",
    "token_max_ttl",
}
_ROLE_ALIASES = {"policies", "ttl", "max_ttl", "period", "num_uses", "bound_cidrs"}
# Set values that are the servers' defaults (OpenBao returns callback_mode even for jwt roles).
_ROLE_DEFAULTS = {"token_type": ("default", "service"), "callback_mode": ("client",)}
_HINTS = {
    "bound_subject": "bind it as bound_claims {/kubernetes.io/namespace: NS, /kubernetes.io/serviceaccount/name: SA}"
    " first: the same logins, which the format carries",
}


def _set(value: Any) -> bool:
    return value not in (None, "", 0, False, [], {})


def cluster_settings(observed: Observed, context: str, refuse) -> dict[str, Any]:
    config = observed.config
    for key in _CONFIG_NOT_CARRIED:
        if _set(config.get(key)):
            refuse(f"auth/{observed.mount.path}/config", key, config[key], "not carried by the format")
    settings: dict[str, Any] = {
        "kubeContext": context,
        "authMode": "jwt",
        "mountPath": observed.mount.path,
        # vaultfleet did not make the mount: no run of it disables the mount (docs/adopt.md).
        "adopted": True,
    }
    if config.get("bound_issuer"):
        settings["issuer"] = config["bound_issuer"]
    return settings


def role(name: str, body: dict[str, Any], ident: str, refuse) -> dict[str, Any]:
    """The stack file's role for a jwt role: its audience, and its namespace and ServiceAccount
    claims as the role's bindings (a claim left unbound binds `*`)."""
    for key, value in sorted(body.items()):
        if key in _ROLE_CARRIED or key in _ROLE_ALIASES or not _set(value):
            continue
        if value in _ROLE_DEFAULTS.get(key, ()):
            continue
        refuse(ident, key, value, _HINTS.get(key, "not carried by the format"))
    if body.get("role_type", "jwt") != "jwt":
        refuse(ident, "role_type", body["role_type"], "only jwt roles (an oidc role logs people in, not workloads)")
    audiences = list(body.get("bound_audiences") or [])
    if len(audiences) != 1:
        # None: every ServiceAccount token carries `aud`, so no login works now; several: dropping
        # any would fail the logins that use it.
        refuse(ident, "bound_audiences", audiences, "the format binds exactly one audience per role")
    claims = {k: ([v] if isinstance(v, str) else list(v)) for k, v in (body.get("bound_claims") or {}).items()}
    for key in sorted(set(claims) - {NAMESPACE_CLAIM, SERVICE_ACCOUNT_CLAIM}):
        refuse(ident, f"bound_claims[{key}]", claims[key], "the format binds only the namespace and ServiceAccount")
    namespaces = claims.get(NAMESPACE_CLAIM, ["*"])
    accounts = claims.get(SERVICE_ACCOUNT_CLAIM, ["*"])
    if body.get("bound_claims_type") == "glob":
        for value in [*namespaces, *accounts]:
            if value != "*" and any(ch in value for ch in "*?["):
                refuse(ident, "bound_claims", value, "a glob other than `*` alone")
    adopted: dict[str, Any] = {
        "name": name,
        "serviceAccounts": accounts,
        "namespaces": namespaces,
        "existingPolicies": list(body.get("token_policies") or []),
        "audience": audiences[0] if len(audiences) == 1 else "",
    }
    if body.get("token_ttl"):
        adopted["ttl"] = int(body["token_ttl"])
    if body.get("token_max_ttl"):
        adopted["maxTtl"] = int(body["token_max_ttl"])
    return adopted


def _normal(key: str, value: Any) -> Any:
    """A field as the comparison sees it: lists in claims and policies compared as sets, PEM keys
    without the trailing whitespace Vault may keep."""
    if key == "bound_claims":
        return {k: sorted([v] if isinstance(v, str) else v) for k, v in (value or {}).items()}
    if key in ("token_policies", "bound_audiences"):
        return sorted(value or [])
    if key == "jwt_validation_pubkeys":
        return sorted(k.strip() for k in value or [])
    if key in ("token_ttl", "token_max_ttl"):
        return int(value or 0)
    return value if value is not None else ""


def add_body_differences(
    description: Description, observed: Observed, stack: ClusterStack, issuer: str, keys: list[str]
) -> None:
    """Every field of the config and role bodies the import run writes that differs from Vault's,
    listed for the admin to accept. `issuer`, `keys`: the cluster's, as the program reads them."""
    mount = observed.mount.path

    def differ(ident: str, key: str, found, written) -> None:
        description.differences.append(Difference(ident, key, repr(found), repr(written)))

    written_config = config_body(stack.cluster.issuer or issuer, keys)
    for key, value in written_config.items():
        if _normal(key, observed.config.get(key)) != _normal(key, value):
            shown = f"{len(value)} keys of the cluster's JWKS" if key == "jwt_validation_pubkeys" else value
            differ(f"auth/{mount}/config", key, observed.config.get(key) or "", shown)
    for key in _KEY_SOURCES:
        if _set(observed.config.get(key)):
            differ(f"auth/{mount}/config", key, observed.config[key], "")
    for role_spec in stack.roles:
        found = observed.roles[role_spec.name]
        for key, value in role_body(stack, role_spec).items():
            if _normal(key, found.get(key)) != _normal(key, value):
                differ(f"auth/{mount}/role/{role_spec.name}", key, found.get(key), value)
