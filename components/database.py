"""The fleet's database secrets engine: PostgreSQL connections and roles handing out dynamic users."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_vault as vault

from components.auth_mount import PROTECTED_MOUNT


@dataclass(frozen=True)
class PostgresConnectionSpec:
    name: str
    """Connection name (`<mount>/config/<name>`); roles refer to it as their `db_name`."""
    connection_url: str
    """postgresql://{{username}}:{{password}}@host:port/db; Vault fills in the templates."""
    username: str
    """PostgreSQL user Vault connects as (needs CREATEROLE, and grant rights for the statements)."""
    password: pulumi.Input[str] = field(repr=False)
    """That user's password; made secret here in any case (encrypted in state, masked in logs)."""
    allowed_roles: list[str] = field(default_factory=list)
    """Roles allowed to use this connection; never `*`."""


@dataclass(frozen=True)
class DatabaseRoleSpec:
    name: str
    """Role name; credentials are read at `<mount>/creds/<name>`."""
    connection: str
    """Name of the connection the role's users are created through."""
    creation_statements: list[str]
    """SQL creating a user; {{name}}, {{password}} and {{expiration}} are filled in by Vault."""
    default_ttl_seconds: int
    """Lease TTL of the credentials."""
    max_ttl_seconds: int
    """Longest a lease can be renewed to."""
    revocation_statements: list[str] = field(default_factory=list)
    """SQL dropping a user when its lease ends; empty: the plugin's default (revoke, drop role)."""


@dataclass
class DatabaseEngineArgs:
    mount_path: str
    """Path of the `database` secrets engine mount."""
    connections: list[PostgresConnectionSpec]
    """PostgreSQL connections (at least one)."""
    roles: list[DatabaseRoleSpec]
    """Roles, each using one of the connections."""


class DatabaseEngine(pulumi.ComponentResource):
    """`vault secrets enable database` + `vault write <mount>/config/<c> ...` + `<mount>/roles/<r>`.

    Outputs:
        mount_path: the mount path.
        connection_names: the connection names, in declaration order.
        role_names: the role names, in declaration order.
    """

    mount_path: pulumi.Output[str]
    connection_names: pulumi.Output[list[str]]
    role_names: pulumi.Output[list[str]]

    def __init__(self, name: str, args: DatabaseEngineArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("vaultfleet:vault:DatabaseEngine", name, None, opts)
        mount = vault.Mount(
            f"{name}-mount",
            path=args.mount_path,
            type="database",
            description="vaultfleet: dynamic database credentials for the fleet",
            # Unmounting (or moving) it revokes every lease it issued: protected like an auth mount.
            opts=pulumi.ResourceOptions.merge(PROTECTED_MOUNT, pulumi.ResourceOptions(parent=self)),
        )
        # Unmounting revokes every outstanding lease, through the connection that created it: when
        # the mount goes, its connections and roles go with it (Vault deletes them) instead of
        # being deleted first, which would leave the revocations nothing to connect with.
        self._inside_mount = pulumi.ResourceOptions(parent=self, deleted_with=mount)
        connections = {spec.name: self._connection(name, mount, spec) for spec in args.connections}
        roles = [
            vault.database.SecretBackendRole(
                f"{name}-role-{spec.name}",
                backend=mount.path,
                name=spec.name,
                # The connection's output, not the plain name: the role is written after its
                # connection exists and removed before it.
                db_name=connections[spec.connection].name,
                creation_statements=spec.creation_statements,
                revocation_statements=spec.revocation_statements or None,
                default_ttl=spec.default_ttl_seconds,
                max_ttl=spec.max_ttl_seconds,
                opts=self._inside_mount,
            )
            for spec in args.roles
        ]

        self.mount_path = mount.path
        self.connection_names = pulumi.Output.all(*[c.name for c in connections.values()])
        self.role_names = pulumi.Output.all(*[r.name for r in roles])
        self.register_outputs(
            {"mount_path": self.mount_path, "connection_names": self.connection_names, "role_names": self.role_names}
        )

    def _connection(
        self, name: str, mount: vault.Mount, spec: PostgresConnectionSpec
    ) -> vault.database.SecretBackendConnection:
        return vault.database.SecretBackendConnection(
            f"{name}-connection-{spec.name}",
            backend=mount.path,
            name=spec.name,
            allowed_roles=spec.allowed_roles,
            # Vault connects right away, so a wrong URL or password fails `up`, not a pod later.
            verify_connection=True,
            postgresql={
                "connection_url": spec.connection_url,
                "username": spec.username,
                "password": pulumi.Output.secret(spec.password),
            },
            # The provider reads the whole block back into state: keep it encrypted there even if
            # the provider's schema did not mark the password sensitive. Protected: deleting it
            # leaves its leases unrevocable (vaultfleet/fleet/danger.py); a delete of the whole
            # engine skips it (deleted_with).
            opts=pulumi.ResourceOptions.merge(
                self._inside_mount, pulumi.ResourceOptions(additional_secret_outputs=["postgresql"], protect=True)
            ),
        )
