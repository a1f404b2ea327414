"""The shared stack's database secrets engine: PostgreSQL connections and the roles using them.

The connection passwords must be Pulumi secrets (`pulumi config set --secret --path ...`);
`secret_passwords` refuses plaintext before anything else is checked.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from vaultfleet.stackfile.errors import NAMESPACE, ConfigError
from vaultfleet.stackfile.fields import (
    DatabaseRoleName,
    Label,
    Model,
    PostgresUrl,
    PostgresUser,
    Seconds,
    Statements,
    unique,
)

# What a stack file holds for a password set with `pulumi config set --secret`: only `vaultfleet
# validate` sees this form (the engine hands the program the decrypted value). It stands in for the
# password in what validate parses, which never reaches a resource.
ENCRYPTED_IN_STACK_FILE = "(encrypted in the stack file)"


class PostgresConnection(Model):
    """`vault write <mount>/config/<name> plugin_name=postgresql-database-plugin ...`."""

    name: Label
    """Connection name; roles name it in `connection`."""
    connection_url: PostgresUrl
    """postgresql://{{username}}:{{password}}@host:port/db?sslmode=...; Vault fills in the templates.
    Hosts (a comma-separated list, as pgx takes it) and ports are checked, and sslmode if given."""
    username: PostgresUser
    """PostgreSQL user Vault connects as; it creates and drops the roles' users (CREATEROLE). At most
    63 bytes (PostgreSQL cuts longer names), no spaces."""
    password: SecretStr
    """That user's password; must be a Pulumi secret (checked in `parse`)."""

    @field_validator("password")
    @classmethod
    def _password_not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("must not be empty")
        return value


class DatabaseRole(Model):
    """`vault write <mount>/roles/<name> db_name=<connection> creation_statements=... ttl=...`."""

    name: DatabaseRoleName
    """Role name; credentials are read at <mount>/creds/<name>. At most 38 characters: consumers
    name files and annotations after it (fields.DATABASE_ROLE_MAX)."""
    connection: Label
    """The connection (by name) the role creates its users through."""
    creation_statements: Statements = Field(min_length=1)
    """SQL run to create a user: {{name}}, {{password}} and {{expiration}} are Vault's templates."""
    revocation_statements: Statements = Field(default_factory=list)
    """SQL run when the lease ends; empty: the plugin's default (revoke privileges, drop the user)."""
    default_ttl: Seconds = 3600
    max_ttl: Seconds = 86400

    @field_validator("creation_statements")
    @classmethod
    def _statements_use_name_and_password(cls, statements: list[str]) -> list[str]:
        text = " ".join(statements)
        missing = [t for t in ("{{name}}", "{{password}}") if t not in text]
        if missing:
            raise ValueError(f"must use {' and '.join(missing)}: Vault fills in the user it hands out")
        return statements

    @model_validator(mode="after")
    def _ttl_within_max(self) -> DatabaseRole:
        if self.default_ttl > self.max_ttl:
            raise ValueError(f"defaultTtl ({self.default_ttl}s) is above maxTtl ({self.max_ttl}s)")
        return self


class DatabaseSettings(Model):
    """The database secrets engine of the fleet: PostgreSQL connections and the roles using them.

    A connection allows exactly the roles that name it (never `*`).
    """

    connections: list[PostgresConnection] = Field(min_length=1)
    roles: list[DatabaseRole] = Field(default_factory=list)

    @field_validator("connections")
    @classmethod
    def _unique_connections(cls, connections: list[PostgresConnection]) -> list[PostgresConnection]:
        unique("connection", [c.name for c in connections])
        return connections

    @field_validator("roles")
    @classmethod
    def _unique_roles(cls, roles: list[DatabaseRole]) -> list[DatabaseRole]:
        unique("role", [r.name for r in roles])
        return roles

    @model_validator(mode="after")
    def _roles_name_declared_connections(self) -> DatabaseSettings:
        names = [c.name for c in self.connections]
        for i, role in enumerate(self.roles):
            if role.connection not in names:
                raise ValueError(f"roles[{i}].connection: '{role.connection}' is not among the connections {names}")
        return self

    def allowed_roles(self, connection: str) -> list[str]:
        return [r.name for r in self.roles if r.connection == connection]


def secret_passwords(database: Any, held_secret: bool, source: str) -> Any:
    """Refuse a connection password that is not a Pulumi secret, before anything else is checked.

    From the engine, a password is plaintext and `held_secret` says whether the engine holds the
    `vaultfleet:database` value as a secret (it does when any field in it was set with --secret).
    From a stack file (`vaultfleet validate`), the password itself must be `secure:` ciphertext.
    """
    if not isinstance(database, dict) or not isinstance(database.get("connections"), list):
        return database  # the schema names what is wrong with the shape
    problems = []
    connections = []
    for i, connection in enumerate(database["connections"]):
        if isinstance(connection, dict) and "password" in connection:
            password = connection["password"]
            if isinstance(password, dict) and set(password) == {"secure"}:
                connection = {**connection, "password": ENCRYPTED_IN_STACK_FILE}
            elif not held_secret:
                problems.append(
                    (
                        source,
                        f"{NAMESPACE}:database.connections[{i}].password",
                        "must be a Pulumi secret, not plaintext: "
                        f"pulumi config set --secret --path '{NAMESPACE}:database.connections[{i}].password' <value>",
                    )
                )
        connections.append(connection)
    if problems:
        raise ConfigError(problems)
    return {**database, "connections": connections}
