"""The lab PostgreSQL as the database lab tests set it up: a table, and the user Vault connects as."""

from __future__ import annotations

import psycopg
from pulumi import automation as auto
from pydantic import SecretStr

from vaultfleet.lab.postgres import PostgresServer

# The PostgreSQL user Vault connects as: it may create roles and hand out SELECT on one table, no more.
VAULT_DB_USER = "vaultfleet_admin"
CREATE = [
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
    'GRANT SELECT ON inventory TO "{{name}}";',
]
REVOKE = ['REVOKE ALL ON inventory FROM "{{name}}";', 'DROP ROLE IF EXISTS "{{name}}";']
INVENTORY = [("bolts", 40), ("nuts", 2)]
CONNECTION = "lab-pg"  # the shared stack's connection to the lab PostgreSQL


def engine_config(pg: PostgresServer, roles: list[dict]) -> dict:
    """The shared stack's `vaultfleet:database` as a user writes it: one connection to the lab's
    PostgreSQL as VAULT_DB_USER (its password set apart, see set_admin_password), and `roles` on it,
    each creating its users with CREATE unless it says otherwise."""
    return {
        "connections": [{"name": CONNECTION, "connectionUrl": pg.vault_connection_url(), "username": VAULT_DB_USER}],
        "roles": [{"name": r["name"], "connection": CONNECTION, "creationStatements": CREATE, **r} for r in roles],
    }


def set_admin_password(shared: auto.Stack, admin_password: SecretStr) -> None:
    """The connection's password, only through `pulumi config set --secret --path` (never in plaintext)."""
    shared.set_config(
        "vaultfleet:database.connections[0].password",
        auto.ConfigValue(admin_password.get_secret_value(), secret=True),
        path=True,
    )


def superuser(pg: PostgresServer) -> psycopg.Connection:
    return psycopg.connect(**pg.connect_kwargs(), autocommit=True)


def prepare(pg: PostgresServer, admin_password: SecretStr) -> None:
    """A fresh `inventory` table and VAULT_DB_USER (CREATEROLE, SELECT it may grant on).

    The password comes as a SecretStr: pytest shows a failing frame's arguments, and its repr is masked.
    """
    drop(pg)
    with superuser(pg) as conn:
        conn.execute("CREATE TABLE inventory (item text PRIMARY KEY, count int)")
        conn.cursor().executemany("INSERT INTO inventory VALUES (%s, %s)", INVENTORY)
        # PASSWORD takes no bind parameter; the value is ours (token_urlsafe: no quotes).
        conn.execute(
            f"CREATE ROLE {VAULT_DB_USER} WITH LOGIN CREATEROLE PASSWORD '{admin_password.get_secret_value()}'"
        )
        conn.execute(f"GRANT SELECT ON inventory TO {VAULT_DB_USER} WITH GRANT OPTION")


def drop(pg: PostgresServer) -> None:
    with superuser(pg) as conn:
        conn.execute("DROP TABLE IF EXISTS inventory")
        conn.execute(f"DROP ROLE IF EXISTS {VAULT_DB_USER}")


def engine_by_hand(vault, pg: PostgresServer, admin_password: SecretStr, mount: str, role: str) -> None:
    """A database secrets engine as a fleet made it before vaultfleet (`vault secrets enable` and two
    writes, or Terraform's vault_database_secret_backend_*): `role` creates users through the
    connection to the lab's PostgreSQL."""
    vault.sys.enable_secrets_engine("database", path=mount)
    vault.write(
        f"{mount}/config/{CONNECTION}",
        plugin_name="postgresql-database-plugin",
        connection_url=pg.vault_connection_url(),
        username=VAULT_DB_USER,
        password=admin_password.get_secret_value(),
        allowed_roles=[role],
    )
    vault.write(
        f"{mount}/roles/{role}",
        db_name=CONNECTION,
        creation_statements=CREATE,
        revocation_statements=REVOKE,
        default_ttl="5m",
        max_ttl="30m",
    )
