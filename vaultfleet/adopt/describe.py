"""From what a cluster has (observe.py) to the stack file that reproduces it, and what it cannot.

A difference is one field of one object that the first run after the import would write
differently from how it is. Some are vaultfleet's own (the mount's description, its max TTL that
caps the cluster's tokens, the reviewer Secret's annotation) and are listed for the admin to accept.
Others would widen who may log in or what a token may do if dropped (bound CIDRs, a namespace
selector, a use limit, an explicit max TTL, no default policy) or cannot be expressed (pem_keys,
globs, batch tokens): those are refusals, and nothing is adopted.
"""

from __future__ import annotations

from typing import Any

from vaultfleet.adopt import describe_jwt
from vaultfleet.adopt.differences import Description, Difference
from vaultfleet.adopt.observe import AdoptError, Observed
from vaultfleet.stackfile.errors import NAMESPACE

MOUNT = "vault:index/authBackend:AuthBackend"
CONFIG = "vault:kubernetes/authBackendConfig:AuthBackendConfig"
ROLE = "vault:kubernetes/authBackendRole:AuthBackendRole"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
SECRET = "kubernetes:core/v1:Secret"
BINDING = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"


def describe(observed: Observed, cluster: str, context: str) -> Description:
    """The stack file and the differences of the config, the roles and the reviewer; the mount's
    own come with `add_mount_differences` once the file is validated."""
    mount = observed.mount
    if mount.type not in ("kubernetes", "jwt"):
        raise AdoptError(f"auth/{mount.path} is a '{mount.type}' mount: adopt takes over kubernetes and jwt mounts")
    description = Description({})
    if "batch" in mount.token_type:
        # A role's `default` token type would be batch: tokens that cannot be revoked one by one.
        description.differences.append(
            Difference(f"auth/{mount.path}", "token_type", repr(mount.token_type), "'default-service'", True)
        )

    def differ(kind: str, ident: str, prop: str, vault_field: str, found, written, refused=False) -> None:
        description.differences.append(Difference(ident, vault_field, repr(found), repr(written), refused))
        description.ignore.setdefault(f"{kind} {ident}", []).append(prop)

    def refuse(ident: str, vault_field: str, found, why: str) -> None:
        description.differences.append(Difference(ident, vault_field, repr(found), "", True, why))

    if mount.type == "jwt":
        cluster_settings = describe_jwt.cluster_settings(observed, context, refuse)
        roles = [
            describe_jwt.role(name, body, f"auth/{mount.path}/role/{name}", refuse)
            for name, body in sorted(observed.roles.items())
        ]
    else:
        cluster_settings = _cluster(observed, context, differ)
        roles = [
            _role(name, body, f"auth/{mount.path}/role/{name}", differ) for name, body in sorted(observed.roles.items())
        ]
    description.document = {
        "config": {
            f"{NAMESPACE}:cluster": cluster_settings,
            # The adopted roles attach their policies by name; no template is rendered for them.
            f"{NAMESPACE}:policies": [],
            f"{NAMESPACE}:roles": roles,
        }
    }
    if observed.reviewer is not None:
        ident = f"{observed.reviewer.namespace}/{observed.reviewer.token_secret}"
        differ(SECRET, ident, "metadata.annotations", "annotations", "as is", "+ pulumi.com/waitFor")
        # Vault never returns the reviewer JWT: the run after the import writes the token Secret's.
        config_id = f"auth/{mount.path}/config"
        differ(CONFIG, config_id, "tokenReviewerJwt", "token_reviewer_jwt", "(never returned)", "the token Secret's")
    return description


def add_mount_differences(description: Description, observed: Observed, cluster: str, max_ttl: int) -> None:
    """What the shared stack writes on the mount itself: its description and the max TTL that caps
    the cluster's tokens (`max_ttl`, from the validated stack file)."""
    mount = observed.mount

    def differ(prop: str, found, written) -> None:
        description.differences.append(Difference(f"auth/{mount.path}", prop, repr(found), repr(written)))
        description.ignore.setdefault(f"{MOUNT} {mount.path}", []).append(prop)

    # The provider writes the whole tune block: vaultfleet's max TTL, the rest Vault's defaults.
    for key in (
        "audit_non_hmac_request_keys",
        "audit_non_hmac_response_keys",
        "passthrough_request_headers",
        "allowed_response_headers",
    ):
        if [v for v in mount.tune.get(key) or [] if v]:  # the provider itself writes [""]
            description.differences.append(
                Difference(f"auth/{mount.path}", f"tune.{key}", repr(mount.tune[key]), "[]", refused=True)
            )
    differ("tune", f"max_lease_ttl {mount.max_lease_ttl or 'system default'}", f"max_lease_ttl {max_ttl}s")
    written = f"vaultfleet: Kubernetes cluster {cluster}"
    if mount.description != written:
        differ("description", mount.description, written)


def _cluster(observed: Observed, context: str, differ) -> dict[str, Any]:
    config, mount = observed.config, observed.mount
    config_id = f"auth/{mount.path}/config"
    if config.get("pem_keys"):
        differ(CONFIG, config_id, "pemKeys", "pem_keys", "set", "[]", refused=True)
    if config.get("use_annotations_as_alias_metadata"):
        differ(
            CONFIG,
            config_id,
            "useAnnotationsAsAliasMetadata",
            "use_annotations_as_alias_metadata",
            True,
            False,
            refused=True,
        )
    if not config.get("kubernetes_ca_cert"):
        differ(CONFIG, config_id, "kubernetesCaCert", "kubernetes_ca_cert", "", "(required)", refused=True)
    settings: dict[str, Any] = {
        "kubeContext": context,
        "apiHost": config.get("kubernetes_host", ""),
        "caCert": config.get("kubernetes_ca_cert", ""),
        "mountPath": mount.path,
        # vaultfleet did not make the mount: no run of it disables the mount (docs/adopt.md).
        "adopted": True,
    }
    issuer = config.get("issuer") or ""
    if issuer and not config.get("disable_iss_validation"):
        settings["issuer"] = issuer
    elif issuer:
        differ(CONFIG, config_id, "issuer", "issuer", issuer, "'' (it was not checked)")
    reviewer = observed.reviewer
    if reviewer is not None:
        settings |= {
            "reviewerNamespace": reviewer.namespace,
            "reviewerServiceAccount": reviewer.service_account,
            "reviewerTokenSecret": reviewer.token_secret,
            "reviewerBinding": reviewer.binding,
        }
        if config.get("disable_local_ca_jwt"):
            differ(CONFIG, config_id, "disableLocalCaJwt", "disable_local_ca_jwt", True, False)
    elif config.get("disable_local_ca_jwt"):
        settings["authMode"] = "client-jwt"
    else:
        raise AdoptError(
            "no reviewer ServiceAccount found (bound to system:auth-delegator, with one token Secret), and the "
            "config does not review with the client's own token: name the reviewer with --reviewer NS/NAME"
        )
    return settings


# Role fields whose loss would widen who may log in or what a token may do: refused when set.
_WIDENING = {
    "token_bound_cidrs": ("tokenBoundCidrs", []),
    "bound_service_account_namespace_selector": ("boundServiceAccountNamespaceSelector", ""),
    "token_num_uses": ("tokenNumUses", 0),
    "token_explicit_max_ttl": ("tokenExplicitMaxTtl", 0),
    "token_no_default_policy": ("tokenNoDefaultPolicy", False),
}


def _role(name: str, body: dict[str, Any], ident: str, differ) -> dict[str, Any]:
    for vault_field, (prop, empty) in _WIDENING.items():
        if body.get(vault_field) not in (None, empty, [], "", 0, False):
            differ(ROLE, ident, prop, vault_field, body[vault_field], empty, refused=True)
    if body.get("token_period"):
        differ(ROLE, ident, "tokenPeriod", "token_period", body["token_period"], 0)
    token_type = body.get("token_type") or "default"
    if token_type not in ("default", "service"):
        differ(ROLE, ident, "tokenType", "token_type", token_type, "service", refused=True)
    alias = body.get("alias_name_source") or "serviceaccount_uid"
    if alias != "serviceaccount_uid":
        differ(ROLE, ident, "aliasNameSource", "alias_name_source", alias, "serviceaccount_uid")
    role: dict[str, Any] = {
        "name": name,
        "serviceAccounts": list(body.get("bound_service_account_names") or []),
        "namespaces": list(body.get("bound_service_account_namespaces") or []),
        "existingPolicies": list(body.get("token_policies") or []),
    }
    ttl = int(body.get("token_ttl") or 0)
    if ttl:
        role["ttl"] = ttl
    else:
        differ(ROLE, ident, "tokenTtl", "token_ttl", "0 (the mount's default)", 3600)
    if body.get("token_max_ttl"):
        role["maxTtl"] = int(body["token_max_ttl"])
    if body.get("audience"):
        role["audience"] = body["audience"]
    if token_type in ("default", "service"):
        role["tokenType"] = token_type
    return role
