"""Vault objects the whole fleet shares; owned by the one shared stack, never by a cluster stack."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_vault as vault

from components.database import DatabaseEngine, DatabaseEngineArgs
from components.pipeline import PipelineIdentities, PipelineIdentitiesArgs


@dataclass
class SharedVaultArgs:
    kv_mount: str
    """Path of the fleet's KV v2 mount; clusters get subtrees kv/data/clusters/<cluster>/..."""
    provisioner_policy: str
    """Rendered HCL of the vaultfleet-provisioner policy."""
    previewer_policy: str = ""
    """Rendered HCL of the vaultfleet-previewer policy (read-only); empty: none is written."""
    database: DatabaseEngineArgs | None = None
    """The fleet's database secrets engine; None: the shared stack declares none."""
    pipeline: PipelineIdentitiesArgs | None = None
    """The CI system's jwt mount and identities; None: the shared stack declares none."""


class SharedVault(pulumi.ComponentResource):
    """KV v2 mount, the least-privilege policies of the pipeline (the provisioner that applies
    cluster stacks, the read-only previewer), and the database secrets engine and the CI system's
    jwt mount when declared.

    Outputs:
        kv_mount: the KV v2 mount path.
        provisioner_policy: the provisioner policy's name.
        database: the DatabaseEngine (mount_path, role_names), or None.
        pipeline: the PipelineIdentities (mount_path, role_names), or None.
    """

    kv_mount: pulumi.Output[str]
    provisioner_policy: pulumi.Output[str]
    database: DatabaseEngine | None
    pipeline: PipelineIdentities | None

    def __init__(self, name: str, args: SharedVaultArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("vaultfleet:vault:SharedVault", name, None, opts)
        kv = vault.Mount(
            f"{name}-kv",
            path=args.kv_mount,
            type="kv",
            options={"version": "2"},
            description="vaultfleet: KV v2 shared by the fleet",
            opts=pulumi.ResourceOptions(parent=self),
        )
        policy = vault.Policy(
            f"{name}-provisioner",
            name="vaultfleet-provisioner",
            policy=args.provisioner_policy,
            opts=pulumi.ResourceOptions(parent=self),
        )
        if args.previewer_policy:
            vault.Policy(
                f"{name}-previewer",
                name="vaultfleet-previewer",
                policy=args.previewer_policy,
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.database = (
            DatabaseEngine(f"{name}-database", args.database, opts=pulumi.ResourceOptions(parent=self))
            if args.database is not None
            else None
        )
        # After the policies: a job that logs in finds the policies its role names.
        self.pipeline = (
            PipelineIdentities(
                f"{name}-pipeline", args.pipeline, opts=pulumi.ResourceOptions(parent=self, depends_on=[policy])
            )
            if args.pipeline is not None
            else None
        )
        self.kv_mount = kv.path
        self.provisioner_policy = policy.name
        outputs = {"kv_mount": self.kv_mount, "provisioner_policy": self.provisioner_policy}
        if self.database is not None:
            outputs["database_mount"] = self.database.mount_path
        if self.pipeline is not None:
            outputs["pipeline_mount"] = self.pipeline.mount_path
        self.register_outputs(outputs)
