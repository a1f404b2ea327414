"""Everything one cluster's own stack makes: the reviewer identity in the cluster, the config of
its auth mount and its roles in Vault, and the consumers' connection objects. The mount and the
policy bodies belong to the shared stack (components/cluster_access.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from components.auth_config import KubernetesAuthConfig, KubernetesAuthConfigArgs
from components.consumer_objects import ConsumerObjects, ConsumerObjectsArgs, CustomObject
from components.jwt_auth import JwtAuth, JwtAuthArgs
from components.previewer import ISSUER_DISCOVERY_URLS, RBAC, ClusterPreviewer, ClusterPreviewerArgs, ObjectRef
from components.reviewer import (
    CLIENT_REVIEW_BINDING,
    ClientTokenReview,
    ClientTokenReviewArgs,
    ReviewerIdentity,
    ReviewerIdentityArgs,
    binding_name,
)
from components.roles import AuthRoles, AuthRolesArgs, RoleSpec


@dataclass
class ClusterOnboardingArgs:
    cluster: str
    """Cluster name, as in the stack name."""
    mount_path: str
    """The cluster's Vault auth mount (made by the shared stack)."""
    kubernetes_host: str
    """API server URL as Vault reaches it."""
    kubernetes_ca_cert: str
    """PEM CA of the API server."""
    policy_names: list[str]
    """The cluster's policies (written by the shared stack); the roles attach some of them."""
    roles: list[RoleSpec]
    """Roles at the mount."""
    reviewer_namespace: str = "kube-system"
    reviewer_service_account: str = "vault-auth"
    reviewer_token_secret: str | None = None
    reviewer_binding: str | None = None
    """The reviewer's ClusterRoleBinding; default `<reviewer_service_account>-<reviewer_namespace>-auth-delegator`."""
    """The reviewer's token Secret; default `<reviewer_service_account>-token`."""
    issuer: str | None = None
    """Expected ServiceAccount token issuer; None disables the check."""
    consumer_objects: list[CustomObject] = field(default_factory=list)
    """external-secrets / VSO objects to create in the cluster (their CRDs installed), logging in with the roles."""
    jwt: JwtAuthArgs | None = None
    """jwt mode: the config and role bodies of Vault's jwt method at the mount; nothing is made in
    the cluster but the consumer objects. None: the kubernetes method (reviewer-token, client-jwt)."""
    client_reviewers: list[tuple[str, str]] | None = None
    """client-jwt mode: (namespace, ServiceAccount) of every role binding, each given
    system:auth-delegator; no reviewer identity is made. None: reviewer-token mode."""
    previewer_group: str | None = None
    """Kubernetes group given read-only access to these objects (ClusterPreviewer); None: none."""


class ClusterOnboarding(pulumi.ComponentResource):
    """Reviewer identity in the cluster, mount config and roles in Vault.

    Pass the cluster's kubernetes provider and the fleet's vault provider through
    `opts.providers`; every child uses them.

    Outputs:
        mount_path, policy_names, role_names.
    """

    mount_path: pulumi.Output[str]
    policy_names: pulumi.Output[list[str]]
    role_names: pulumi.Output[list[str]]

    def __init__(self, name: str, args: ClusterOnboardingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("vaultfleet:cluster:ClusterOnboarding", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        if args.jwt is not None:
            jwt = JwtAuth(f"{name}-jwt", args.jwt, opts=child)
            mount_path, role_names, roles = jwt.mount_path, jwt.names, jwt
        else:
            mount_path, role_names, roles = self._kubernetes_auth(name, args)
        if args.consumer_objects:
            # After the roles: a consumer's first login should find its role.
            ConsumerObjects(
                f"{name}-consumers",
                ConsumerObjectsArgs(args.consumer_objects),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[roles]),
            )

        if args.previewer_group:
            ClusterPreviewer(f"{name}-previewer", self._previewer_args(args), opts=child)

        self.mount_path = mount_path
        self.policy_names = pulumi.Output.from_input(list(args.policy_names))
        self.role_names = role_names
        self.register_outputs(
            {"mount_path": self.mount_path, "policy_names": self.policy_names, "role_names": self.role_names}
        )

    def _kubernetes_auth(self, name: str, args: ClusterOnboardingArgs):
        """reviewer-token or client-jwt: the kubernetes method, with its reviewer (or the clients'
        binding), config and roles; (mount path, role names, the roles component)."""
        child = pulumi.ResourceOptions(parent=self)
        if args.client_reviewers is None:
            reviewer_jwt: pulumi.Output[str] | None = ReviewerIdentity(
                f"{name}-reviewer",
                ReviewerIdentityArgs(
                    namespace=args.reviewer_namespace,
                    service_account_name=args.reviewer_service_account,
                    token_secret_name=args.reviewer_token_secret,
                    binding_name=args.reviewer_binding,
                ),
                opts=child,
            ).token
        else:
            ClientTokenReview(f"{name}-client-review", ClientTokenReviewArgs(args.client_reviewers), opts=child)
            reviewer_jwt = None
        config = KubernetesAuthConfig(
            f"{name}-auth",
            KubernetesAuthConfigArgs(
                mount_path=args.mount_path,
                kubernetes_host=args.kubernetes_host,
                kubernetes_ca_cert=args.kubernetes_ca_cert,
                token_reviewer_jwt=reviewer_jwt,
                issuer=args.issuer,
            ),
            opts=child,
        )
        roles = AuthRoles(f"{name}-roles", AuthRolesArgs(backend=args.mount_path, roles=args.roles), opts=child)
        return config.mount_path, roles.names, roles

    @staticmethod
    def _previewer_args(args: ClusterOnboardingArgs) -> ClusterPreviewerArgs:
        account = args.reviewer_service_account
        consumers = [ObjectRef(o.group, o.resource, o.name) for o in args.consumer_objects]
        if args.jwt is not None:
            # No object of its own in the cluster: the run reads the issuer's discovery and keys.
            return ClusterPreviewerArgs(
                group=args.previewer_group or "",
                namespace=args.reviewer_namespace,
                namespaced=[],
                cluster_wide=consumers,
                non_resource_urls=list(ISSUER_DISCOVERY_URLS),
            )
        if args.client_reviewers is None:
            secret = args.reviewer_token_secret or f"{account}-token"
            namespaced = [ObjectRef("", "serviceaccounts", account), ObjectRef("", "secrets", secret)]
            binding = args.reviewer_binding or binding_name(account, args.reviewer_namespace)
        else:
            namespaced, binding = [], CLIENT_REVIEW_BINDING
        return ClusterPreviewerArgs(
            group=args.previewer_group or "",
            namespace=args.reviewer_namespace,
            namespaced=namespaced,
            cluster_wide=[ObjectRef(RBAC, "clusterrolebindings", binding), *consumers],
        )
