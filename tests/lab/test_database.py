"""Dynamic PostgreSQL credentials, for real: the shared stack's database engine against the lab's
PostgreSQL, lab-a's db-creds policy, a ServiceAccount that logs in, reads credentials, connects,
renews and revokes them.

The tests share one fleet (a copy of the project in a temp dir): test_1 brings it up and checks it,
the others get it from the `db_up` fixture, which only looks when test_1 ran. The credentials test_2
to test_4 issue, renew and revoke, and the lease test_8 destroys the engine under, come from fixtures.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import hvac
import psycopg
import pytest
from pydantic import SecretStr

from tests.harness import Fleet, copy_project, destroy_stacks, edit_stack, plain_stack_export
from tests.lab import database as lab_db
from tests.lab.database import CREATE, REVOKE, VAULT_DB_USER
from tests.leaks import leaks
from vaultfleet.fleet.runner import run
from vaultfleet.stackfile import Project

# Server-dependent, the whole module: the server's database secrets engine issues, renews and
# revokes the PostgreSQL users, under its ACL policies and leases.
pytestmark = [pytest.mark.lab, pytest.mark.server]

CLUSTER_ROLE = "db-app"  # lab-a's Vault role granted db-creds
NAMESPACE, ACCOUNT = "shop", "orders"


@pytest.fixture(scope="module")
def fleet(lab, lab_env, tmp_path_factory):
    assert lab.postgres is not None, "this lab runs without PostgreSQL: `vaultfleet lab down` and `lab up` again"
    project = copy_project(tmp_path_factory.mktemp("dbfleet"))
    fleet = Fleet(lab, lab_env, project, admin_password=SecretStr(secrets.token_urlsafe(24)))
    # The stack files as a user writes them.
    fleet.declare_database(
        [
            {"name": "app-readonly", "revocationStatements": REVOKE, "defaultTtl": "10m", "maxTtl": "1h"},
            {"name": "reporting", "defaultTtl": "5m", "maxTtl": "30m"},
        ],
        {
            "name": CLUSTER_ROLE,
            "serviceAccounts": [ACCOUNT],
            "namespaces": [NAMESPACE],
            "policies": ["db-creds"],
            "ttl": "15m",
            "audience": "vault",
        },
        ["app-readonly"],
    )
    yield fleet
    destroy_stacks(fleet.project, lab_env, ["lab-a", "vault"])
    lab_db.drop(lab.postgres)


@pytest.fixture()
def db_up(fleet) -> Fleet:
    """The engine and lab-a's db-app role up: what test_1 does and checks. After it, this only looks
    (no engine run); a test run without it gets the fleet here."""
    engine = "database/" in fleet.vault.sys.list_mounted_secrets_engines()["data"]
    if not engine or "k8s-lab-a-db-creds" not in fleet.vault.sys.list_policies()["data"]["policies"]:
        fleet.up("vault")
        fleet.up("lab-a")
    return fleet


@pytest.fixture()
def issued(db_up) -> tuple[hvac.Client, dict]:
    """app-readonly credentials the db-app ServiceAccount read: issued once, then shared by the tests
    that check, renew and revoke them (a revoked lease makes the next asker get new ones)."""
    if "issued" not in db_up.held:
        client = db_up.login(CLUSTER_ROLE, NAMESPACE, ACCOUNT)
        db_up.held["issued"] = (
            client,
            client.secrets.database.generate_credentials("app-readonly", mount_point="database"),
        )
    return db_up.held["issued"]


@pytest.fixture()
def outstanding(db_up) -> dict:
    """reporting credentials issued with the root token, whose lease no holder revokes."""
    if "outstanding" not in db_up.held:
        db_up.held["outstanding"] = db_up.vault.secrets.database.generate_credentials(
            "reporting", mount_point="database"
        )["data"]
    return db_up.held["outstanding"]


def test_1_engine_connection_roles_and_policy_in_vault(fleet):
    stack_text = fleet.stack_file("vault").read_text()
    assert fleet.admin_password.get_secret_value() not in stack_text and "secure: v1:" in stack_text

    fleet.up("vault")
    fleet.up("lab-a")

    assert fleet.vault.sys.list_mounted_secrets_engines()["data"]["database/"]["type"] == "database"
    connection = fleet.vault.read("database/config/lab-pg")["data"]
    assert connection["plugin_name"] == "postgresql-database-plugin"
    assert sorted(connection["allowed_roles"]) == ["app-readonly", "reporting"]
    assert connection["connection_details"]["username"] == VAULT_DB_USER
    assert "password" not in connection["connection_details"]  # Vault never returns it
    role = fleet.vault.read("database/roles/app-readonly")["data"]
    assert (role["db_name"], role["default_ttl"], role["max_ttl"]) == ("lab-pg", 600, 3600)
    assert role["creation_statements"] == CREATE and role["revocation_statements"] == REVOKE
    policy = fleet.vault.sys.read_policy("k8s-lab-a-db-creds")["data"]["rules"]
    assert 'path "database/creds/app-readonly"' in policy and "reporting" not in policy
    login_role = fleet.vault.auth.kubernetes.read_role(CLUSTER_ROLE, mount_point="k8s-lab-a")
    assert login_role["token_policies"] == ["k8s-lab-a-db-creds"]


def test_2_service_account_reads_credentials_and_queries_postgres(db_up, issued):
    fleet, (_, creds) = db_up, issued
    username, password = creds["data"]["username"], creds["data"]["password"]
    assert creds["lease_duration"] == 600 and creds["renewable"]
    with fleet.as_user(username, password) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (username,)
        assert conn.execute("SELECT item, count FROM inventory ORDER BY item").fetchall() == [
            ("bolts", 40),
            ("nuts", 2),
        ]
        # Only what the creation statements granted: no writes.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO inventory VALUES ('washers', 1)")
    with fleet.superuser() as conn:
        (valid_until,) = conn.execute("SELECT rolvaliduntil FROM pg_roles WHERE rolname = %s", (username,)).fetchone()
    assert valid_until is not None  # VALID UNTIL '{{expiration}}': the user dies with its lease


def test_3_lease_is_renewed_by_its_holder(db_up, issued):
    fleet, (client, creds) = db_up, issued
    renewed = client.sys.renew_lease(creds["lease_id"], increment=1200)
    assert renewed["lease_id"] == creds["lease_id"]
    assert 600 < renewed["lease_duration"] <= 1200
    with fleet.as_user(creds["data"]["username"], creds["data"]["password"]) as conn:
        assert conn.execute("SELECT count(*) FROM inventory").fetchone() == (2,)


def test_4_after_revoke_the_credentials_no_longer_connect(db_up, issued):
    fleet, (client, creds) = db_up, issued
    client.sys.revoke_lease(creds["lease_id"])
    del fleet.held["issued"]
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        fleet.as_user(creds["data"]["username"], creds["data"]["password"])
    with fleet.superuser() as conn:
        assert (
            conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (creds["data"]["username"],)).fetchone() is None
        )


def test_5_no_credentials_without_the_policy_or_for_undeclared_roles(db_up, outstanding):
    fleet = db_up
    # lab-a's `app` role has kv-read only: 403 on any database path.
    app = fleet.login("app", "app", "app")
    with pytest.raises(hvac.exceptions.Forbidden):
        app.secrets.database.generate_credentials("app-readonly", mount_point="database")
    # The db-creds holder gets only the database roles lab-a declared.
    holder = fleet.login(CLUSTER_ROLE, NAMESPACE, ACCOUNT)
    with pytest.raises(hvac.exceptions.Forbidden):
        holder.secrets.database.generate_credentials("reporting", mount_point="database")
    with pytest.raises(hvac.exceptions.Forbidden):
        holder.read("database/config/lab-pg")
    # Vault itself can issue `reporting` (the role works: the fixture got `outstanding` with the root
    # token), so the 403 above is the policy's doing. That lease stays outstanding on purpose: test_8
    # destroys the engine under it.
    assert outstanding["username"]


@pytest.mark.usefixtures("db_up")
def test_6_passwords_never_in_any_encoding_in_state_export_logs_or_outputs(fleet):
    backend = Path(fleet.lab.backend_url.removeprefix("file://"))
    texts = {str(p): p.read_text(errors="replace") for p in backend.rglob("*") if p.is_file()}
    export = plain_stack_export(fleet.project, "vault", fleet.env)
    texts["pulumi stack export -s vault"] = export
    texts.update({str(p): p.read_text() for p in (fleet.project / "stacks").glob("*.yaml")})
    texts.update({f"pulumi up output #{i}": t for i, t in enumerate(fleet.outputs)})
    texts["stack outputs"] = json.dumps({k: v.value for k, v in fleet.stacks["vault"].outputs().items()})
    # The lab's logs too: the server's (Vault connects with the password) and PostgreSQL's.
    texts.update({str(p): p.read_text(errors="replace") for p in (fleet.lab.directory / "logs").glob("*.log")})
    assert any("vault.json" in where for where in texts)
    secrets = {
        "database admin password": fleet.admin_password.get_secret_value(),
        "superuser password": fleet.lab.postgres.password(),
    }
    assert all(len(secret) > 20 for secret in secrets.values())
    found = leaks(secrets, texts)  # as is, base64, URL-encoded, JSON-escaped
    assert not found, "\n".join(found)
    # It is in state, encrypted: the password input, and the whole postgresql block the provider
    # reads back (an additional secret output), carry ciphertext.
    deployment = json.loads(export)["deployment"]
    connection = next(
        r
        for r in deployment["resources"]
        if r["type"] == "vault:database/secretBackendConnection:SecretBackendConnection"
    )
    assert "ciphertext" in connection["inputs"]["postgresql"]["password"], connection["inputs"]["postgresql"]
    assert "ciphertext" in connection["outputs"]["postgresql"], connection["outputs"]["postgresql"]


@pytest.mark.usefixtures("db_up")
def test_7_second_up_and_preview_change_nothing(fleet):
    for name in ("vault", "lab-a"):
        result = fleet.up(name)
        assert set(result.summary.resource_changes) == {"same"}, (name, result.summary.resource_changes)
        preview = fleet.stacks[name].preview(color="never", refresh=True)
        assert set(preview.change_summary) == {"same"}, (name, preview.change_summary)


@pytest.mark.usefixtures("db_up")
def test_7b_renaming_the_connection_is_refused_and_leaves_it_in_vault(fleet, outstanding):
    """A connection's delete is dangerous (the leases of its roles could no longer be revoked): the
    shared stack's `up` refuses it, naming the connection, and writes nothing. Positive control
    first: the same caller's `up` of the same stack, unchanged, goes through; test_8 revokes
    `outstanding` through the connection kept."""
    (control,) = run(Project(fleet.project), ["vault"], "up", env=fleet.env)
    assert control.ok and not control.refused, control.error
    shared_file = fleet.project / "stacks" / "Pulumi.vault.yaml"
    before = shared_file.read_text()

    def rename(config: dict) -> None:
        database = config["vaultfleet:database"]
        database["connections"][0]["name"] = "lab-pg-2"
        for role in database["roles"]:
            role["connection"] = "lab-pg-2"

    edit_stack(fleet.project, "vault", rename)
    try:
        (result,) = run(Project(fleet.project), ["vault"], "up", env=fleet.env)
    finally:
        shared_file.write_text(before)
    assert not result.ok and result.error.startswith("refused: stack vault"), result.error
    # Another name is another resource: the old connection's delete (and the new one's create).
    assert (
        "delete vault:database/secretBackendConnection:SecretBackendConnection fleet-database-connection-lab-pg: "
        "deletes database connection database/config/lab-pg: the leases its roles issued can no longer be revoked"
    ) in result.error, result.error
    assert fleet.vault.read("database/config/lab-pg")["data"]["plugin_name"] == "postgresql-database-plugin"
    assert fleet.vault.read("database/config/lab-pg-2") is None
    assert fleet.vault.read("database/roles/reporting")["data"]["db_name"] == "lab-pg"


@pytest.mark.usefixtures("db_up")
def test_8_destroy_revokes_outstanding_leases_and_removes_the_engine(fleet, outstanding):
    """Unmounting revokes the leases through the connection, so the connection must still be there."""
    # As `vaultfleet destroy lab-a vault` does (cluster first): a plain `pulumi destroy` of the shared
    # stack stops at its protected mounts (docs/dangerous-steps.md).
    results = run(Project(fleet.project), ["lab-a", "vault"], "destroy", env=fleet.env)
    assert all(r.ok for r in results), [r.error for r in results]
    assert "database/" not in fleet.vault.sys.list_mounted_secrets_engines()["data"]
    assert "k8s-lab-a-db-creds" not in fleet.vault.sys.list_policies()["data"]["policies"]
    with fleet.superuser() as conn:
        assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (outstanding["username"],)).fetchone() is None
