"""Vault objects the whole fleet shares; owned by the one shared stack, never by a cluster stack."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_vault as vault

from components.cluster_access import ClusterAccess, ClusterAccessArgs
from components.database import DatabaseEngine, DatabaseEngineArgs
from components.pipeline import PipelineIdentities, PipelineIdentitiesArgs


@dataclass
class SharedVaultArgs:
    kv_mount: str
    """Path of the fleet's KV v2 mount; clusters get subtrees kv/data/clusters/<cluster>/..."""
    clusters: list[ClusterAccessArgs] = field(default_factory=list)
    """Each cluster's mount, policies and applier policy."""
    previewer_policy: str = ""
    """Rendered HCL of the vaultfleet-previewer policy (read-only); empty: none is written."""
    database: DatabaseEngineArgs | None = None
    """The fleet's database secrets engine; None: the shared stack declares none."""
    pipeline: PipelineIdentitiesArgs | None = None
    """The CI system's jwt mount and identities; None: the shared stack declares none."""


class SharedVault(pulumi.ComponentResource):
    """What the whole fleet shares, written by the privileged shared stack: the KV v2 mount, each
    cluster's mount, policies and applier policy, the read-only previewer policy, and the database
    secrets engine and the CI system's jwt mount when declared.

    Outputs:
        kv_mount: the KV v2 mount path.
        clusters: the ClusterAccess per cluster name (mount_path, mount_accessor, policy_names, applier_policy).
        database: the DatabaseEngine (mount_path, role_names), or None.
        pipeline: the PipelineIdentities (mount_path, role_names), or None.
    """

    kv_mount: pulumi.Output[str]
    clusters: dict[str, ClusterAccess]
    database: DatabaseEngine | None
    pipeline: PipelineIdentities | None

    def __init__(self, name: str, args: SharedVaultArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("vaultfleet:vault:SharedVault", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        kv = vault.Mount(
            f"{name}-kv",
            path=args.kv_mount,
            type="kv",
            options={"version": "2"},
            description="vaultfleet: KV v2 shared by the fleet",
            # Unmounting loses every secret: a plain `pulumi up` stops before a delete or replace. A
            # new path stays the provider's remount (a replace would lose the data; the secrets move):
            # `vaultfleet up` refuses that unless told (docs/dangerous-steps.md).
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        self.clusters = {c.cluster: ClusterAccess(f"{name}-cluster-{c.cluster}", c, opts=child) for c in args.clusters}
        policies: list[pulumi.Resource] = list(self.clusters.values())
        if args.previewer_policy:
            # After the clusters' mounts: a mount that cannot be made (its path another method's)
            # never gets a read grant in the previewer policy.
            policies.append(
                vault.Policy(
                    f"{name}-previewer",
                    name="vaultfleet-previewer",
                    policy=args.previewer_policy,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=list(self.clusters.values())),
                )
            )
        self.database = DatabaseEngine(f"{name}-database", args.database, opts=child) if args.database else None
        # After the policies: a job that logs in finds the policies its role names.
        self.pipeline = (
            PipelineIdentities(
                f"{name}-pipeline", args.pipeline, opts=pulumi.ResourceOptions(parent=self, depends_on=policies)
            )
            if args.pipeline is not None
            else None
        )
        self.kv_mount = kv.path
        outputs = {"kv_mount": self.kv_mount}
        if self.database is not None:
            outputs["database_mount"] = self.database.mount_path
        if self.pipeline is not None:
            outputs["pipeline_mount"] = self.pipeline.mount_path
        self.register_outputs(outputs)
