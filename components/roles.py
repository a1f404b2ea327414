"""Roles at the cluster's auth mount: ServiceAccount names x namespaces -> policies."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_vault as vault


@dataclass(frozen=True)
class RoleSpec:
    name: str
    """Role name; logins use it as `role=<name>`."""
    service_accounts: list[str]
    """Bound ServiceAccount names (`*` for any)."""
    namespaces: list[str]
    """Bound namespaces (`*` for any)."""
    policies: list[str]
    """Vault policy names attached to tokens issued by this role."""
    ttl_seconds: int
    """Token TTL."""
    max_ttl_seconds: int | None = None
    """Token max TTL; None leaves Vault's mount default."""
    audience: str | None = None
    """Required `aud` claim of the login JWT; None accepts any (Vault warns about this)."""
    token_type: str = "service"
    """Vault token type of the role's logins; written explicitly, so the mount's default does not
    decide it (service tokens can be revoked one by one, batch tokens cannot)."""


@dataclass
class AuthRolesArgs:
    backend: pulumi.Input[str]
    """Auth mount path the roles live under."""
    roles: list[RoleSpec]


class AuthRoles(pulumi.ComponentResource):
    """`vault write auth/<mount>/role/<name> bound_service_account_names=... policies=... ttl=...`.

    Outputs:
        names: the role names, in declaration order.
    """

    names: pulumi.Output[list[str]]

    def __init__(self, name: str, args: AuthRolesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("vaultfleet:vault:AuthRoles", name, None, opts)
        created = [
            vault.kubernetes.AuthBackendRole(
                f"{name}-{spec.name}",
                backend=args.backend,
                role_name=spec.name,
                bound_service_account_names=spec.service_accounts,
                bound_service_account_namespaces=spec.namespaces,
                token_policies=spec.policies,
                token_ttl=spec.ttl_seconds,
                token_max_ttl=spec.max_ttl_seconds,
                audience=spec.audience,
                token_type=spec.token_type,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for spec in args.roles
        ]
        self.names = pulumi.Output.all(*[r.role_name for r in created])
        self.register_outputs({"names": self.names})
