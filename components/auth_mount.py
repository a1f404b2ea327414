"""A cluster's own `kubernetes` auth mount in Vault: created by the privileged shared stack, so the
identity that applies the cluster's stack needs no right to enable or remove auth methods."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_vault as vault


@dataclass
class KubernetesAuthMountArgs:
    path: str
    """Mount path, unique per cluster (e.g. k8s-lab-a): logins go to auth/<path>/login."""
    description: str = ""
    method: str = "kubernetes"
    """`kubernetes`, or `jwt` for a cluster in jwt mode (changing it replaces the mount: the cluster's
    config and roles go with it, and its stack's next run writes them again)."""
    max_lease_ttl_seconds: int | None = None
    """Tuned max TTL of every token the mount issues; None leaves Vault's system default."""
    retain_on_delete: bool = False
    """Leave the mount in Vault when it leaves the stack (an adopted cluster's: vaultfleet did not
    make it, so no run of vaultfleet disables it and revokes what it issued)."""


# Disabling or moving a mount revokes every token and lease it issued. `protect` stops a plain
# `pulumi up` before a delete or replace of it (its preview fails); a new path is a replace rather
# than the provider's in-place remount, which `protect` would let through (Vault revokes on a move
# too). `vaultfleet up` lifts it for a run that names the stack: docs/dangerous-steps.md.
PROTECTED_MOUNT = pulumi.ResourceOptions(protect=True, replace_on_changes=["path"])


class KubernetesAuthMount(pulumi.ComponentResource):
    """`vault auth enable -path=<path> kubernetes`.

    Outputs:
        path: the mount path.
        accessor: the mount accessor (for identity templating in policies).
    """

    path: pulumi.Output[str]
    accessor: pulumi.Output[str]

    def __init__(self, name: str, args: KubernetesAuthMountArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("vaultfleet:vault:KubernetesAuthMount", name, None, opts)
        backend = vault.AuthBackend(
            f"{name}-backend",
            type=args.method,
            path=args.path,
            description=args.description,
            tune=vault.AuthBackendTuneArgs(max_lease_ttl=f"{args.max_lease_ttl_seconds}s")
            if args.max_lease_ttl_seconds
            else None,
            opts=pulumi.ResourceOptions.merge(
                PROTECTED_MOUNT, pulumi.ResourceOptions(parent=self, retain_on_delete=args.retain_on_delete)
            ),
        )
        self.path = backend.path
        self.accessor = backend.accessor
        self.register_outputs({"path": self.path, "accessor": self.accessor})
