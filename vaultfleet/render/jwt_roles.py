"""jwt mode's request bodies: what the cluster stack writes at `auth/<mount>/config` and
`auth/<mount>/role/<name>`, and what the cluster's applier policy pins (render/applier.py). Defined
once here, so the two cannot drift apart. Both servers (OpenBao 2.4.0, Vault 1.14.1) compare a map
or list parameter in `allowed_parameters` as a whole value, and cannot pin numbers (TTLs)."""

from __future__ import annotations

from vaultfleet.stackfile.schema import ClusterStack, Role

NAMESPACE_CLAIM = "/kubernetes.io/namespace"
SERVICE_ACCOUNT_CLAIM = "/kubernetes.io/serviceaccount/name"
# Claims copied to the login's alias metadata under the names the kubernetes method uses, so the
# namespace-scoped policy templates read the same keys in every mode.
CLAIM_MAPPINGS = {
    NAMESPACE_CLAIM: "service_account_namespace",
    SERVICE_ACCOUNT_CLAIM: "service_account_name",
    "/kubernetes.io/serviceaccount/uid": "service_account_uid",
}


def role_body(stack: ClusterStack, role: Role) -> dict:
    """`auth/<mount>/role/<name>` of a jwt-mode role: the token's audience, namespace and
    ServiceAccount name checked as claims (globs only where the stack file says `*`)."""
    glob = "*" in role.namespaces or "*" in role.service_accounts
    body = {
        "role_type": "jwt",
        "user_claim": "sub",
        "bound_audiences": [role.audience],
        "bound_claims": {NAMESPACE_CLAIM: list(role.namespaces), SERVICE_ACCOUNT_CLAIM: list(role.service_accounts)},
        "bound_claims_type": "glob" if glob else "string",
        "claim_mappings": CLAIM_MAPPINGS,
        "token_policies": sorted(stack.token_policies(role)),
        "token_ttl": role.ttl,
    }
    if role.max_ttl is not None:
        body["token_max_ttl"] = role.max_ttl
    return body


def config_body(issuer: str, public_keys: list[str]) -> dict:
    """`auth/<mount>/config`: the cluster's issuer and its current keys."""
    return {"jwt_validation_pubkeys": sorted(public_keys), "bound_issuer": issuer}
