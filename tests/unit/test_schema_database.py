"""The database secrets engine in the shared stack (connections, roles, the password a Pulumi secret)
and the databaseRoles a cluster stack reads: what parses, and bad input named by file and field."""

import pytest

from tests.harness import FILE, FLEET, SHARED_FILE, accepted, cluster_values, problems, refused
from vaultfleet.stackfile.schema import ConfigError, parse

PG_URL = "postgresql://{{username}}:{{password}}@127.0.0.1:18432/postgres?sslmode=disable"
CREATE = ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"]
PASSWORD = "correct-horse-battery-staple"


def connection(**overrides):
    base = {"name": "app-db", "connectionUrl": PG_URL, "username": "vault", "password": PASSWORD}
    base.update(overrides)
    return base


def db_role(**overrides):
    base = {"name": "app-readonly", "connection": "app-db", "creationStatements": CREATE}
    base.update(overrides)
    return base


def shared_values(database=None, **overrides):
    database = database if database is not None else {"connections": [connection()], "roles": [db_role()]}
    return {**FLEET, "kind": "shared", "database": database, **overrides}


def parse_shared(values, secret_keys=("database",)):
    """As from the engine: the password set with --secret makes `vaultfleet:database` a secret key."""
    return parse(values, "vault", SHARED_FILE, secret_keys)


def test_database_engine_parses_with_defaults():
    stack = parse_shared(shared_values())
    assert stack.fleet.database_mount == "database"
    (conn,) = stack.database.connections
    assert conn.password.get_secret_value() == PASSWORD
    assert PASSWORD not in repr(stack)  # pydantic SecretStr: never in a repr or traceback
    (role,) = stack.database.roles
    assert (role.default_ttl, role.max_ttl, role.revocation_statements) == (3600, 86400, [])
    assert stack.database.allowed_roles("app-db") == ["app-readonly"]


def test_connection_allows_exactly_the_roles_naming_it():
    database = {
        "connections": [connection(), connection(name="reports-db")],
        "roles": [db_role(), db_role(name="reporting", connection="reports-db"), db_role(name="app-rw")],
    }
    stack = parse_shared(shared_values(database))
    assert stack.database.allowed_roles("app-db") == ["app-readonly", "app-rw"]
    assert stack.database.allowed_roles("reports-db") == ["reporting"]


def test_shared_stack_without_database_has_none():
    assert parse_shared({**FLEET, "kind": "shared"}).database is None


def test_password_as_written_in_a_stack_file_is_accepted_encrypted():
    """`vaultfleet validate` reads the file itself: a `secure:` value is the ciphertext."""
    stack = parse(shared_values({"connections": [connection(password={"secure": "v1:abc"})]}), "vault", SHARED_FILE)
    assert stack.database.connections[0].password.get_secret_value() == "(encrypted in the stack file)"


@pytest.mark.parametrize("password", [PASSWORD, 12345])
def test_plaintext_password_is_refused_naming_file_and_field(password):
    values = shared_values({"connections": [connection(password=password)]})
    with pytest.raises(ConfigError) as info:
        parse(values, "vault", SHARED_FILE, secret_keys=())
    ((file, field, message),) = info.value.problems
    assert (file, field) == (SHARED_FILE, "vaultfleet:database.connections[0].password")
    assert "must be a Pulumi secret" in message and "--secret --path" in message
    assert str(password) not in message


def test_decode_secret_keys_keeps_the_vaultfleet_namespace_only():
    from vaultfleet.stackfile.schema import decode_secret_keys

    assert decode_secret_keys(["vaultfleet:database", "vault:token", "other:database"]) == {"database"}


@pytest.mark.parametrize(
    ("values", "field", "fragment"),
    [
        (shared_values({"connections": []}), "vaultfleet:database.connections", "at least 1"),
        (
            shared_values({"connections": [connection(allowedRoles=["*"])]}),
            "vaultfleet:database.connections[0].allowedRoles",
            "unknown field",
        ),
        (
            shared_values({"connections": [connection(connectionURL=PG_URL)]}),
            "vaultfleet:database.connections[0].connectionURL",
            "unknown field",
        ),
        (shared_values({"connection": []}), "vaultfleet:database.connection", "unknown field"),
        (
            shared_values({"connections": [connection(connectionUrl="mysql://{{username}}:{{password}}@h/db")]}),
            "vaultfleet:database.connections[0].connectionUrl",
            "postgresql://",
        ),
        (
            shared_values({"connections": [connection(connectionUrl="postgresql://vault:hunter2@h:5432/db")]}),
            "vaultfleet:database.connections[0].connectionUrl",
            "{{username}}:{{password}}",
        ),
        (
            shared_values({"connections": [connection(connectionUrl="postgresql://h:5432/db")]}),
            "vaultfleet:database.connections[0].connectionUrl",
            "Vault's templating",
        ),
        (
            shared_values({"connections": [connection(username="")]}),
            "vaultfleet:database.connections[0].username",
            "at least 1",
        ),
        (
            shared_values({"connections": [connection(password="")]}),
            "vaultfleet:database.connections[0].password",
            "must not be empty",
        ),
        (
            shared_values({"connections": [connection(name="App_DB")]}),
            "vaultfleet:database.connections[0].name",
            "DNS label",
        ),
        (
            shared_values({"connections": [connection(), connection()]}),
            "vaultfleet:database.connections",
            "declared twice",
        ),
        (
            shared_values({"connections": [connection()], "roles": [db_role(), db_role()]}),
            "vaultfleet:database.roles",
            "declared twice",
        ),
        (
            shared_values({"connections": [connection()], "roles": [db_role(connection="other")]}),
            "vaultfleet:database",
            "roles[0].connection: 'other' is not among",
        ),
        (
            shared_values({"connections": [connection()], "roles": [db_role(creationStatements=[])]}),
            "vaultfleet:database.roles[0].creationStatements",
            "at least 1",
        ),
        (
            shared_values({"connections": [connection()], "roles": [db_role(creationStatements=["CREATE ROLE x;"])]}),
            "vaultfleet:database.roles[0].creationStatements",
            "{{name}} and {{password}}",
        ),
        (
            shared_values({"connections": [connection()], "roles": [db_role(creationStatements="CREATE ROLE")]}),
            "vaultfleet:database.roles[0].creationStatements",
            "valid list",
        ),
        (
            shared_values({"connections": [connection()], "roles": [db_role(revocationStatements=[" "])]}),
            "vaultfleet:database.roles[0].revocationStatements",
            "statement is empty",
        ),
        (
            shared_values({"connections": [connection()], "roles": [db_role(defaultTtl="2d", maxTtl="1d")]}),
            "vaultfleet:database.roles[0]",
            "above maxTtl",
        ),
        (
            shared_values({"connections": [connection()], "roles": [db_role(defaultTtl="soon")]}),
            "vaultfleet:database.roles[0].defaultTtl",
            "not a duration",
        ),
        (
            shared_values({"connections": [connection()], "roles": [db_role(default_ttl="1h")]}),
            "vaultfleet:database.roles[0].default_ttl",
            "unknown field",
        ),
        (shared_values("postgres"), "vaultfleet:database", "valid dictionary"),
        (shared_values(databaseMount="Database"), "vaultfleet:databaseMount", "DNS label"),
    ],
)
def test_bad_database_input_names_file_and_field(values, field, fragment):
    with pytest.raises(ConfigError) as info:
        parse_shared(values)
    found = info.value.problems
    assert any(f == SHARED_FILE and fld == field and fragment in msg for f, fld, msg in found), found
    assert not any(PASSWORD in msg or "hunter2" in msg for _, _, msg in found)


def test_cluster_stack_names_its_database_roles():
    stack = parse(cluster_values(databaseRoles=["app-readonly"], policies=["kv-read", "db-creds"]), "lab-a", FILE)
    assert stack.database_roles == ["app-readonly"]
    assert parse(cluster_values(), "lab-a", FILE).database_roles == []


@pytest.mark.parametrize(
    ("values", "field", "fragment"),
    [
        (cluster_values(databaseRoles="app-readonly"), "vaultfleet:databaseRoles", "valid list"),
        (cluster_values(databaseRoles=["App"]), "vaultfleet:databaseRoles[0]", "DNS label"),
        (cluster_values(databaseRoles=["a", "a"]), "vaultfleet:databaseRoles", "declared twice"),
        (cluster_values(databaseRole=["a"]), "vaultfleet:databaseRole", "did you mean 'vaultfleet:databaseRoles'"),
        (cluster_values(database={"connections": []}), "vaultfleet:database", "only the shared stack"),
    ],
)
def test_bad_cluster_database_input_names_file_and_field(values, field, fragment):
    found = problems(values)
    assert any(f == FILE and fld == field and fragment in msg for f, fld, msg in found), found


def test_shared_stack_refuses_database_roles():
    with pytest.raises(ConfigError) as info:
        parse_shared({**shared_values(), "databaseRoles": ["a"]})
    assert info.value.problems == [(SHARED_FILE, "vaultfleet:databaseRoles", "not allowed in the shared stack")]


def test_database_role_names_fit_the_injector_annotation():
    # `agent-inject-template-db-<role>` is an annotation name: at most 63 characters.
    assert accepted(cluster_values(databaseRoles=["r" * 38])).database_roles == ["r" * 38]
    refused(cluster_values(databaseRoles=["r" * 39]), "vaultfleet:databaseRoles[0]", "at most 38")
    stack = parse_shared(shared_values({"connections": [connection()], "roles": [db_role(name="r" * 38)]}))
    assert stack.database.roles[0].name == "r" * 38
    with pytest.raises(ConfigError) as info:
        parse_shared(shared_values({"connections": [connection()], "roles": [db_role(name="r" * 39)]}))
    assert info.value.problems[0][1] == "vaultfleet:database.roles[0].name"


@pytest.mark.parametrize(
    "url",
    [
        PG_URL,
        "postgresql://{{username}}:{{password}}@db.internal/app",
        "postgres://{{username}}:{{password}}@db.internal:5432",
        "postgresql://{{username}}:{{password}}@[2001:db8::5]:5432/app?sslmode=verify-full",
        "postgresql://{{username}}:{{password}}@db1:5432,db2:5433/app?sslmode=require&connect_timeout=5",
    ],
)
def test_connection_urls_with_sane_hosts_are_accepted(url):
    assert parse_shared(shared_values({"connections": [connection(connectionUrl=url)]})).database


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("postgresql://{{username}}:{{password}}@db.internal:0/app", "between 1 and 65535"),
        ("postgresql://{{username}}:{{password}}@db.internal:65536/app", "between 1 and 65535"),
        ("postgresql://{{username}}:{{password}}@db.internal:pg/app", "host:port"),
        ("postgresql://{{username}}:{{password}}@/app", "names no host"),
        ("postgresql://{{username}}:{{password}}@db1:5432,/app", "not a host name"),
        ("postgresql://{{username}}:{{password}}@db internal/app", "spaces"),
        ("postgresql://{{username}}:{{password}}@db.internal/app?sslmode=on", "sslmode 'on'"),
    ],
)
def test_connection_urls_with_bad_hosts_are_refused(url, fragment):
    with pytest.raises(ConfigError) as info:
        parse_shared(shared_values({"connections": [connection(connectionUrl=url)]}))
    ((file, field, message),) = info.value.problems
    assert (file, field) == (SHARED_FILE, "vaultfleet:database.connections[0].connectionUrl")
    assert fragment in message, message


def test_connection_username_is_a_postgres_role_name():
    for name in ("vault", "vaultfleet_admin", "u" * 63, "vault@corp"):
        assert parse_shared(shared_values({"connections": [connection(username=name)]})).database
    for bad, fragment in (("u" * 64, "63 bytes"), ("é" * 32, "63 bytes"), ("vault admin", "spaces"), ("v\n", "spaces")):
        with pytest.raises(ConfigError) as info:
            parse_shared(shared_values({"connections": [connection(username=bad)]}))
        ((_, field, message),) = info.value.problems
        assert field == "vaultfleet:database.connections[0].username" and fragment in message, message
