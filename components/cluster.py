"""Everything one cluster needs to log in to the fleet's Vault, composed."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from components.auth_mount import KubernetesAuthMount, KubernetesAuthMountArgs
from components.consumer_objects import ConsumerObjects, ConsumerObjectsArgs
from components.policies import ClusterPolicies, ClusterPoliciesArgs
from components.reviewer import ReviewerIdentity, ReviewerIdentityArgs
from components.roles import AuthRoles, AuthRolesArgs, RoleSpec


@dataclass
class ClusterOnboardingArgs:
    cluster: str
    """Cluster name, as in the stack name."""
    mount_path: str
    """Vault auth mount path for this cluster (unique in the fleet)."""
    kubernetes_host: str
    """API server URL as Vault reaches it."""
    kubernetes_ca_cert: str
    """PEM CA of the API server."""
    policies: dict[str, str]
    """Policy name -> rendered HCL body; `accessor_placeholder` in it becomes the mount's accessor."""
    roles: list[RoleSpec]
    """Roles at the mount."""
    reviewer_namespace: str = "kube-system"
    reviewer_service_account: str = "vault-auth"
    issuer: str | None = None
    """Expected ServiceAccount token issuer; None disables the check."""
    consumer_objects: list[dict] = field(default_factory=list)
    """external-secrets / VSO objects to create in the cluster (their CRDs installed), logging in with the roles."""
    accessor_placeholder: str = "${mount_accessor}"
    """Text in policy bodies that stands for the mount's accessor, known only once the mount exists."""


class ClusterOnboarding(pulumi.ComponentResource):
    """Reviewer identity in the cluster, auth mount + config, policies and roles in Vault.

    Pass the cluster's kubernetes provider and the fleet's vault provider through
    `opts.providers`; every child uses them.

    Outputs:
        mount_path, mount_accessor, policy_names, role_names.
    """

    mount_path: pulumi.Output[str]
    mount_accessor: pulumi.Output[str]
    policy_names: pulumi.Output[list[str]]
    role_names: pulumi.Output[list[str]]

    def __init__(self, name: str, args: ClusterOnboardingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("vaultfleet:cluster:ClusterOnboarding", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        reviewer = ReviewerIdentity(
            f"{name}-reviewer",
            ReviewerIdentityArgs(namespace=args.reviewer_namespace, service_account_name=args.reviewer_service_account),
            opts=child,
        )
        mount = KubernetesAuthMount(
            f"{name}-auth",
            KubernetesAuthMountArgs(
                path=args.mount_path,
                kubernetes_host=args.kubernetes_host,
                kubernetes_ca_cert=args.kubernetes_ca_cert,
                token_reviewer_jwt=reviewer.token,
                issuer=args.issuer,
                description=f"vaultfleet: Kubernetes cluster {args.cluster}",
            ),
            opts=child,
        )
        policies = ClusterPolicies(
            f"{name}-policies",
            ClusterPoliciesArgs(self._with_accessor(args.policies, args.accessor_placeholder, mount)),
            opts=child,
        )
        # Roles name policies by string; depend on them so a role never points at a policy that
        # does not exist yet (and is deleted before its policies on destroy).
        roles = AuthRoles(
            f"{name}-roles",
            AuthRolesArgs(backend=mount.path, roles=args.roles),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policies]),
        )
        if args.consumer_objects:
            # After the roles: a consumer's first login should find its role.
            ConsumerObjects(
                f"{name}-consumers",
                ConsumerObjectsArgs(args.consumer_objects),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[roles]),
            )

        self.mount_path = mount.path
        self.mount_accessor = mount.accessor
        self.policy_names = policies.names
        self.role_names = roles.names
        self.register_outputs(
            {
                "mount_path": self.mount_path,
                "mount_accessor": self.mount_accessor,
                "policy_names": self.policy_names,
                "role_names": self.role_names,
            }
        )

    @staticmethod
    def _with_accessor(
        bodies: dict[str, str], placeholder: str, mount: KubernetesAuthMount
    ) -> dict[str, pulumi.Input[str]]:
        """Bodies that template on the mount's entity aliases get its accessor, once Vault has made it."""
        return {
            policy_name: mount.accessor.apply(lambda accessor, body=body: body.replace(placeholder, accessor))
            if placeholder in body
            else body
            for policy_name, body in bodies.items()
        }
