"""jwt mode: the cluster's mount is Vault's `jwt` auth method, checking ServiceAccount tokens with the
cluster's own issuer keys (no TokenReview, no reviewer). The config and the roles are written as the
exact request bodies the program renders (generic endpoints): the applier policy pins every
parameter sent, and a refresh compares exactly those."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_vault as vault


@dataclass
class JwtAuthArgs:
    mount_path: str
    """The cluster's jwt auth mount (made by the shared stack)."""
    config: dict
    """Body of auth/<mount>/config: the issuer and its current keys (read from the cluster's JWKS)."""
    roles: dict[str, dict]
    """Role name -> body of auth/<mount>/role/<name>, exactly as the applier policy pins it."""


class JwtAuth(pulumi.ComponentResource):
    """`auth/<mount>/config` (issuer and keys) and one `auth/<mount>/role/<name>` per role body.

    Outputs:
        mount_path: the mount.
        names: the role names, in declaration order.
    """

    mount_path: pulumi.Output[str]
    names: pulumi.Output[list[str]]

    def __init__(self, name: str, args: JwtAuthArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("vaultfleet:vault:JwtAuth", name, None, opts)
        config = vault.generic.Endpoint(
            f"{name}-config",
            path=f"auth/{args.mount_path}/config",
            data_json=json.dumps(args.config),
            ignore_absent_fields=True,
            disable_delete=True,  # a mount's config cannot be deleted, only the mount
            opts=pulumi.ResourceOptions(parent=self),
        )
        roles = [
            vault.generic.Endpoint(
                f"{name}-role-{role}",
                path=f"auth/{args.mount_path}/role/{role}",
                data_json=json.dumps(body),
                ignore_absent_fields=True,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[config]),
            )
            for role, body in args.roles.items()
        ]
        self.mount_path = config.path.apply(lambda p: p.removeprefix("auth/").removesuffix("/config"))
        self.names = pulumi.Output.all(*[r.path.apply(lambda p: p.rsplit("/", 1)[-1]) for r in roles])
        self.register_outputs({"mount_path": self.mount_path, "names": self.names})
