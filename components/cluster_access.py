"""What the privileged shared stack makes for each cluster: its auth mount, its policy bodies (the
mount's accessor filled in), and its applier policy, which pins what the cluster's own stack may
write. A pull request to one cluster's stack file therefore changes what may be attached only
through this reviewed, privileged stage."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_vault as vault

from components.auth_mount import KubernetesAuthMount, KubernetesAuthMountArgs
from components.policies import ClusterPolicies, ClusterPoliciesArgs


@dataclass
class ClusterAccessArgs:
    cluster: str
    """Cluster name, as in its stack name."""
    mount_path: str
    """The cluster's auth mount (e.g. k8s-lab-a)."""
    policies: dict[str, str]
    """Policy name -> rendered HCL body; `accessor_placeholder` in it becomes the mount's accessor."""
    applier_policy_name: str
    applier_policy: str
    """HCL of the policy the identity applying the cluster's stack holds."""
    accessor_placeholder: str = "${mount_accessor}"
    auth_method: str = "kubernetes"
    """The mount's auth method: kubernetes (reviewer-token, client-jwt) or jwt."""
    max_ttl_seconds: int | None = None
    """The mount's tuned max TTL: caps every token the mount issues (renewals included), including
    the TTLs the applier policy cannot pin; None leaves Vault's system default."""
    state_key: str | None = None
    """Name of the Transit key (mount `transit/`) for the cluster stack's state; None: none is made."""
    retain_mount: bool = False
    """Leave the mount in Vault when the cluster leaves the stack (an adopted cluster's)."""
    preview_grants_name: str = ""
    preview_grants: str = ""
    """HCL of what a preview reads of this cluster beyond the fleet's previewer policy (per-cluster
    layout: its mount, its state key); empty: no such policy is written."""


class ClusterAccess(pulumi.ComponentResource):
    """One cluster's mount, policies and applier policy.

    Outputs:
        mount_path, mount_accessor, policy_names, applier_policy.
    """

    mount_path: pulumi.Output[str]
    mount_accessor: pulumi.Output[str]
    policy_names: pulumi.Output[list[str]]
    applier_policy: pulumi.Output[str]

    def __init__(self, name: str, args: ClusterAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("vaultfleet:vault:ClusterAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        mount = KubernetesAuthMount(
            f"{name}-auth",
            KubernetesAuthMountArgs(
                path=args.mount_path,
                description=f"vaultfleet: Kubernetes cluster {args.cluster}",
                method=args.auth_method,
                max_lease_ttl_seconds=args.max_ttl_seconds,
                retain_on_delete=args.retain_mount,
            ),
            opts=child,
        )
        placeholder = args.accessor_placeholder
        bodies = {
            policy_name: mount.accessor.apply(lambda accessor, body=body: body.replace(placeholder, accessor))
            if placeholder in body
            else body
            for policy_name, body in args.policies.items()
        }
        # After the mount, every body: a mount that cannot be made (its path another's) writes no
        # policy either, so a name another cluster left in Vault is not overwritten by a failed run.
        policies = ClusterPolicies(
            f"{name}-policies",
            ClusterPoliciesArgs(bodies),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[mount]),
        )
        # After the mount: a mount that cannot be made (its path taken) never leaves an applier
        # policy pinning writes under that path.
        applier = vault.Policy(
            f"{name}-applier",
            name=args.applier_policy_name,
            policy=args.applier_policy,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[mount]),
        )
        if args.preview_grants:
            # After the mount, as the applier policy: no read grant for a mount that was not made.
            vault.Policy(
                f"{name}-preview",
                name=args.preview_grants_name,
                policy=args.preview_grants,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[mount]),
            )
        if args.state_key:
            # Kept when the cluster leaves the fleet: its state's secrets stay readable. Not
            # exportable, not deletable through Vault's API (deletion_allowed false). Protected too:
            # the key leaves the stack (or is remade) only in a run that says so.
            vault.transit.SecretBackendKey(
                f"{name}-state-key",
                backend="transit",
                name=args.state_key,
                deletion_allowed=False,
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True, protect=True),
            )
        self.mount_path = mount.path
        self.mount_accessor = mount.accessor
        self.policy_names = policies.names
        self.applier_policy = applier.name
        self.register_outputs(
            {
                "mount_path": self.mount_path,
                "mount_accessor": self.mount_accessor,
                "policy_names": self.policy_names,
                "applier_policy": self.applier_policy,
            }
        )
