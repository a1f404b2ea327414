"""The CI system's way into Vault: a `jwt` auth mount for its OIDC tokens, and a previewer and an
applier role, each bound to the claims a job's token must carry."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_vault as vault

from components.auth_mount import PROTECTED_MOUNT


@dataclass(frozen=True)
class PipelineIdentitySpec:
    name: str
    """Role name; a job logs in with `role=<name>`."""
    bound_claims: dict[str, str]
    """Claims the job's token must carry, matched exactly."""
    policies: list[str]
    """Policies of the Vault token the job gets."""


@dataclass
class PipelineIdentitiesArgs:
    mount_path: str
    """Path of the jwt auth mount (logins at auth/<path>/login)."""
    issuer: str
    """The tokens' `iss`, checked by Vault (bound_issuer)."""
    audience: str
    """The `aud` every token must carry."""
    identities: list[PipelineIdentitySpec]
    ttl_seconds: int
    """Lifetime of the Vault tokens (also their maximum: a job cannot renew past it)."""
    public_keys: list[str] = field(default_factory=list)
    """PEM keys the tokens are signed with; empty: OIDC discovery at `issuer`."""


class PipelineIdentities(pulumi.ComponentResource):
    """`vault auth enable -path=<mount> jwt`, its config (issuer, keys) and one role per identity.

    Outputs:
        mount_path: the jwt mount's path.
        role_names: the identities' role names.
    """

    mount_path: pulumi.Output[str]
    role_names: pulumi.Output[list[str]]

    def __init__(self, name: str, args: PipelineIdentitiesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("vaultfleet:vault:PipelineIdentities", name, None, opts)
        keys = {"jwt_validation_pubkeys": args.public_keys} if args.public_keys else {"oidc_discovery_url": args.issuer}
        backend = vault.jwt.AuthBackend(
            f"{name}-backend",
            path=args.mount_path,
            type="jwt",
            bound_issuer=args.issuer,
            description="vaultfleet: CI jobs log in with their OIDC token",
            opts=pulumi.ResourceOptions.merge(PROTECTED_MOUNT, pulumi.ResourceOptions(parent=self)),
            **keys,
        )
        roles = [
            vault.jwt.AuthBackendRole(
                f"{name}-{spec.name}",
                backend=backend.path,
                role_name=spec.name,
                role_type="jwt",
                user_claim="sub",
                bound_audiences=[args.audience],
                bound_claims=spec.bound_claims,
                bound_claims_type="string",  # exact values: no globs
                token_policies=spec.policies,
                token_ttl=args.ttl_seconds,
                token_max_ttl=args.ttl_seconds,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for spec in args.identities
        ]
        self.mount_path = backend.path
        self.role_names = pulumi.Output.all(*[r.role_name for r in roles])
        self.register_outputs({"mount_path": self.mount_path, "role_names": self.role_names})
