"""Read-only access for the pipeline's previewer in one cluster: what `preview --refresh` of the
cluster's stack reads there (the reviewer objects, the consumer objects, these grants themselves),
by name, `get` only. Nothing else: no list, no other Secret, no write."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

NAME = "vaultfleet-previewer"
# What a jwt-mode run reads to learn the cluster's issuer and keys (not granted to every user).
ISSUER_DISCOVERY_URLS = ("/.well-known/openid-configuration", "/openid/v1/jwks")
RBAC = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class ObjectRef:
    api_group: str
    """"" for the core group."""
    resource: str
    """Plural resource name, e.g. serviceaccounts."""
    name: str


@dataclass
class ClusterPreviewerArgs:
    group: str
    """The Kubernetes group the cluster puts the previewer's identity in (client certificate O=,
    OIDC groups claim, ...)."""
    namespace: str
    """The reviewer's namespace: its ServiceAccount and token Secret are read through a Role there,
    so no Secret of that name in any other namespace is readable."""
    namespaced: list[ObjectRef]
    """Objects in `namespace` (the reviewer's ServiceAccount and token Secret)."""
    cluster_wide: list[ObjectRef] = field(default_factory=list)
    """Cluster-scoped objects and objects in other namespaces (the auth-delegator binding, the
    consumers' SecretStores and VaultAuths), read through the ClusterRole."""
    non_resource_urls: list[str] = field(default_factory=list)
    """URLs the run reads besides objects (jwt mode: the issuer's discovery document and keys)."""


def _rules(objects: list[ObjectRef]) -> list[dict]:
    names: dict[tuple[str, str], set[str]] = defaultdict(set)
    for o in objects:
        names[(o.api_group, o.resource)].add(o.name)
    return [
        {"apiGroups": [group], "resources": [resource], "resourceNames": sorted(n), "verbs": ["get"]}
        for (group, resource), n in sorted(names.items())
    ]


class ClusterPreviewer(pulumi.ComponentResource):
    """ClusterRole + ClusterRoleBinding and Role + RoleBinding `vaultfleet-previewer` for `group`.

    Outputs:
        bindings: `<kind>/<name>` of the two bindings, once both exist.
    """

    bindings: pulumi.Output[list[str]]

    def __init__(self, name: str, args: ClusterPreviewerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("vaultfleet:cluster:ClusterPreviewer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        subject = [{"kind": "Group", "name": args.group, "apiGroup": RBAC}]
        own_cluster = [ObjectRef(RBAC, "clusterroles", NAME), ObjectRef(RBAC, "clusterrolebindings", NAME)]
        own_namespaced = [ObjectRef(RBAC, "roles", NAME), ObjectRef(RBAC, "rolebindings", NAME)]
        k8s.rbac.v1.ClusterRole(
            f"{name}-clusterrole",
            metadata={"name": NAME},
            rules=_rules([*args.cluster_wide, *own_cluster])
            + (
                [{"nonResourceURLs": sorted(args.non_resource_urls), "verbs": ["get"]}]
                if args.non_resource_urls
                else []
            ),
            opts=child,
        )
        cluster_binding = k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-clusterrolebinding",
            metadata={"name": NAME},
            role_ref={"apiGroup": RBAC, "kind": "ClusterRole", "name": NAME},
            subjects=subject,
            opts=child,
        )
        k8s.rbac.v1.Role(
            f"{name}-role",
            metadata={"name": NAME, "namespace": args.namespace},
            rules=_rules([*args.namespaced, *own_namespaced]),
            opts=child,
        )
        binding = k8s.rbac.v1.RoleBinding(
            f"{name}-rolebinding",
            metadata={"name": NAME, "namespace": args.namespace},
            role_ref={"apiGroup": RBAC, "kind": "Role", "name": NAME},
            subjects=subject,
            opts=child,
        )
        self.bindings = pulumi.Output.all(
            cluster_binding.metadata.apply(lambda m: f"ClusterRoleBinding/{m['name']}"),
            binding.metadata.apply(lambda m: f"RoleBinding/{m['namespace']}/{m['name']}"),
        )
        self.register_outputs({"bindings": self.bindings})
