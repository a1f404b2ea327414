"""Pulumi components of vaultfleet. Typed Args in, documented outputs out; no config reads
here, and nothing imported from the vaultfleet package (the program passes everything in)."""

from components.auth_config import KubernetesAuthConfig, KubernetesAuthConfigArgs
from components.auth_mount import KubernetesAuthMount, KubernetesAuthMountArgs
from components.cluster import ClusterOnboarding, ClusterOnboardingArgs
from components.cluster_access import ClusterAccess, ClusterAccessArgs
from components.consumer_objects import ConsumerObjects, ConsumerObjectsArgs, CustomObject
from components.database import DatabaseEngine, DatabaseEngineArgs, DatabaseRoleSpec, PostgresConnectionSpec
from components.pipeline import PipelineIdentities, PipelineIdentitiesArgs, PipelineIdentitySpec
from components.policies import ClusterPolicies, ClusterPoliciesArgs
from components.previewer import ClusterPreviewer, ClusterPreviewerArgs
from components.reviewer import ClientTokenReview, ClientTokenReviewArgs, ReviewerIdentity, ReviewerIdentityArgs
from components.roles import AuthRoles, AuthRolesArgs, RoleSpec
from components.shared import SharedVault, SharedVaultArgs

__all__ = [
    "AuthRoles",
    "AuthRolesArgs",
    "ClientTokenReview",
    "ClientTokenReviewArgs",
    "ClusterAccess",
    "ClusterAccessArgs",
    "ClusterOnboarding",
    "ClusterOnboardingArgs",
    "ClusterPolicies",
    "ClusterPreviewer",
    "ClusterPreviewerArgs",
    "ClusterPoliciesArgs",
    "ConsumerObjects",
    "ConsumerObjectsArgs",
    "CustomObject",
    "DatabaseEngine",
    "DatabaseEngineArgs",
    "DatabaseRoleSpec",
    "KubernetesAuthConfig",
    "KubernetesAuthConfigArgs",
    "KubernetesAuthMount",
    "PipelineIdentities",
    "PipelineIdentitiesArgs",
    "PipelineIdentitySpec",
    "KubernetesAuthMountArgs",
    "PostgresConnectionSpec",
    "ReviewerIdentity",
    "ReviewerIdentityArgs",
    "RoleSpec",
    "SharedVault",
    "SharedVaultArgs",
]
