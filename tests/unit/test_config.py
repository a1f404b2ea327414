"""Stack file schema: valid input parses, bad input is rejected naming file and field."""

import pytest

from vaultfleet.project.schema import ClusterStack, ConfigError, SharedStack, parse

FILE = "stacks/Pulumi.lab-a.yaml"
FLEET = {"vaultAddress": "http://127.0.0.1:18200", "mountPrefix": "k8s", "kvMount": "kv"}


def role(**overrides):
    base = {
        "name": "app",
        "serviceAccounts": ["app"],
        "namespaces": ["app"],
        "policies": ["kv-read"],
        "audience": "vault",
    }
    base.update(overrides)
    return base


def cluster_values(**overrides):
    values = {**FLEET, "cluster": {"kubeContext": "lab-a"}, "roles": [role()]}
    values.update(overrides)
    return values


def test_minimal_cluster_stack_gets_fleet_defaults():
    stack = parse(cluster_values(), "lab-a", FILE)
    assert isinstance(stack, ClusterStack)
    assert stack.mount_path == "k8s-lab-a"
    assert stack.policy_name("kv-read") == "k8s-lab-a-kv-read"
    assert stack.policies == ["kv-read", "kv-write"]
    assert stack.roles[0].ttl == 3600
    assert stack.cluster.reviewer_namespace == "kube-system"


def test_durations_accept_vault_units():
    stack = parse(cluster_values(roles=[role(ttl="15m", maxTtl="2h")]), "lab-a", FILE)
    assert (stack.roles[0].ttl, stack.roles[0].max_ttl) == (900, 7200)


def test_shared_stack():
    stack = parse({**FLEET, "kind": "shared"}, "vault", "stacks/Pulumi.vault.yaml")
    assert isinstance(stack, SharedStack)


def problems(values, stack="lab-a"):
    with pytest.raises(ConfigError) as info:
        parse(values, stack, FILE)
    return info.value.problems


@pytest.mark.parametrize(
    ("values", "field", "fragment"),
    [
        (cluster_values(role=[]), "vaultfleet:role", "did you mean 'vaultfleet:roles'"),
        (cluster_values(roles=[role(audiences="vault")]), "vaultfleet:roles[0].audiences", "unknown field"),
        (cluster_values(roles=[role(policy=["kv-read"])]), "vaultfleet:roles[0].policy", "unknown field"),
        (cluster_values(roles=[role(ttl="-5m")]), "vaultfleet:roles[0].ttl", "not a duration"),
        (cluster_values(roles=[role(ttl="365d")]), "vaultfleet:roles[0].ttl", "between 1s"),
        (cluster_values(roles=[role(ttl="2h", maxTtl="1h")]), "vaultfleet:roles[0]", "above maxTtl"),
        (cluster_values(roles=[role(namespaces=[])]), "vaultfleet:roles[0].namespaces", "at least 1"),
        (cluster_values(roles=[role(name="App_1")]), "vaultfleet:roles[0].name", "DNS label"),
        (cluster_values(roles=[role(policies=["nope"])]), "vaultfleet", "'nope' is not among"),
        (cluster_values(roles=[role(), role()]), "vaultfleet:roles", "declared twice"),
        (cluster_values(roles="app"), "vaultfleet:roles", "valid list"),
        (cluster_values(cluster={}), "vaultfleet:cluster.kubeContext", "required"),
        (
            cluster_values(cluster={"kubeContext": "x", "apiHost": "ftp://h"}),
            "vaultfleet:cluster.apiHost",
            "not an http",
        ),
        (cluster_values(cluster={"kubeContext": "x", "caCert": "hello"}), "vaultfleet:cluster.caCert", "PEM"),
        ({**cluster_values(), "vaultAddress": "not a url"}, "vaultfleet:vaultAddress", "not an http"),
        ({k: v for k, v in cluster_values().items() if k != "vaultAddress"}, "vaultfleet:vaultAddress", "required"),
        ({**FLEET, "kind": "shared", "roles": []}, "vaultfleet:roles", "not allowed in the shared stack"),
    ],
)
def test_bad_input_names_file_and_field(values, field, fragment):
    found = problems(values)
    assert any(f == FILE and fld == field and fragment in msg for f, fld, msg in found), found


def test_invalid_stack_name():
    assert problems(cluster_values(), stack="Lab_A")[0][1] == "vaultfleet:name"


# --- database secrets engine (shared stack) and databaseRoles (cluster stacks) -------------------

SHARED_FILE = "stacks/Pulumi.vault.yaml"
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
    from vaultfleet.project.schema import decode_secret_keys

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


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"consumers": ["vso", "injector"]}, "vaultfleet:roles[0].consumers[1]", "'eso' or 'vso'"),
        ({"consumers": ["vso", "vso"]}, "vaultfleet:roles[0]", "each kind once"),
        ({"consumers": ["eso"], "namespaces": ["*"]}, "vaultfleet:roles[0]", "named namespaces"),
        ({"consumers": ["eso"], "serviceAccounts": ["*"]}, "vaultfleet:roles[0]", "named serviceAccounts"),
    ],
)
def test_role_consumers_are_checked(overrides, field, fragment):
    with pytest.raises(ConfigError) as info:
        parse(cluster_values(roles=[role(**overrides)]), "lab-a", FILE)
    ((file, fld, message),) = info.value.problems
    assert (file, fld) == (FILE, field) and fragment in message, info.value.problems
