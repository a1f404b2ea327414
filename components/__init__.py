"""Pulumi components of vaultfleet. Typed Args in, documented outputs out; no config reads here."""

from components.auth_mount import KubernetesAuthMount, KubernetesAuthMountArgs
from components.cluster import ClusterOnboarding, ClusterOnboardingArgs
from components.consumer_objects import ConsumerObjects, ConsumerObjectsArgs
from components.policies import ClusterPolicies, ClusterPoliciesArgs
from components.reviewer import ReviewerIdentity, ReviewerIdentityArgs
from components.roles import AuthRoles, AuthRolesArgs, RoleSpec
from components.shared import SharedVault, SharedVaultArgs

__all__ = [
    "AuthRoles", "AuthRolesArgs", "ClusterOnboarding", "ClusterOnboardingArgs", "ClusterPolicies",
    "ConsumerObjects", "ConsumerObjectsArgs",
    "ClusterPoliciesArgs", "KubernetesAuthMount", "KubernetesAuthMountArgs", "ReviewerIdentity",
    "ReviewerIdentityArgs", "RoleSpec", "SharedVault", "SharedVaultArgs",
]
