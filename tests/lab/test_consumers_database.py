"""Consumers of dynamic PostgreSQL credentials, for real: what `vaultfleet consumers` generates for a
role granted db-creds, run by Vault Agent, and applied under the external-secrets and VSO CRDs.

One module over 300 lines: its tests walk one fleet through its life, and that fleet (the engine on
the lab's PostgreSQL, two stacks up, the CRDs installed) is a module fixture, brought up once; split,
each module would bring it up again.

The fleet: the shared stack's database engine with a connection to the lab's PostgreSQL, and lab-a's
role `orders` (kv-read and db-creds) for shop/orders. The tests share it, brought up once by the
fixture; none depends on another.

A rendered connection string holds a password: the tests compare its parts but never the whole
string, wrap connection errors so that it cannot appear in them, hand passwords to helpers as
SecretStr (pytest prints a failing frame's arguments), and delete the rendered files.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import hvac
import psycopg
import pytest
from pulumi import automation as auto
from pydantic import SecretStr
from typer.testing import CliRunner

from tests.conftest import edit_stack
from tests.lab import consumer_checks, k8s
from tests.lab import database as lab_db
from tests.lab.agent import run_agent
from tests.lab.conftest import copy_project, destroy_stacks, login, root_client
from tests.lab.consumer_checks import assert_role_admits, assert_subset, create_strict, patched_pod_template
from vaultfleet.cli import app
from vaultfleet.fleet.engine import select_stack

# Server-dependent, the whole module: the server's database engine issues the credentials the
# generated objects name, and its own agent renders them.
pytestmark = [pytest.mark.lab, pytest.mark.server]
runner = CliRunner()

CLUSTER, MOUNT = "lab-a", "k8s-lab-a"
ROLE, NAMESPACE, ACCOUNT = "orders", "shop", "orders"  # lab-a's Vault role and the ServiceAccount it binds
DB_ROLE = "app-readonly"  # the shared stack's database role lab-a declares
SECRET = {"greeting": "hello-orders"}  # the KV secret the role reads beside its credentials
CRDS = {
    "external-secrets": ["secretstores", "externalsecrets", "vaultdynamicsecrets"],
    "vault-secrets-operator": ["vaultconnections", "vaultauths", "vaultstaticsecrets", "vaultdynamicsecrets"],
}


class Fleet:
    def __init__(self, lab, env, project: Path, admin_password: SecretStr):
        self.lab, self.env, self.project = lab, env, project
        self.admin_password = admin_password
        self.pg = lab.postgres
        self.vault = root_client(lab)
        self.kube = k8s.api_client(str(lab.kubeconfig), CLUSTER)
        self.stacks: dict[str, auto.Stack] = {}

    def edit(self, name, change) -> None:
        edit_stack(self.project, name, change)

    def consumers(self, *args: str):
        """What `vaultfleet consumers` prints for the role, parsed from its JSON."""
        result = runner.invoke(
            app,
            ["consumers", CLUSTER, "--role", ROLE, *args, "--format", "json"],
            env={"VAULTFLEET_PROJECT": str(self.project)},
        )
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def login(self, role: str, account: str, audience: str | None) -> hvac.Client:
        return login(self.lab, CLUSTER, role, NAMESPACE, account, audience)


def _declare(fleet: Fleet) -> None:
    """The stack files as a user writes them; the password only through `config set --secret --path`."""
    role = {"name": DB_ROLE, "revocationStatements": lab_db.REVOKE, "defaultTtl": "10m", "maxTtl": "1h"}
    fleet.edit("vault", lambda c: c.update({"vaultfleet:database": lab_db.engine_config(fleet.pg, [role])}))

    def grant(config):
        config["vaultfleet:policies"] = ["kv-read", "kv-write", "db-creds"]
        config["vaultfleet:databaseRoles"] = [DB_ROLE]
        config["vaultfleet:roles"].append(
            {
                "name": ROLE,
                "serviceAccounts": [ACCOUNT],
                "namespaces": [NAMESPACE],
                "policies": ["kv-read", "db-creds"],
                "ttl": "15m",
                "audience": "vault",
            }
        )

    fleet.edit(CLUSTER, grant)
    fleet.stacks = {name: select_stack(name, fleet.project, fleet.env) for name in ("vault", CLUSTER)}
    lab_db.set_admin_password(fleet.stacks["vault"], fleet.admin_password)


@pytest.fixture(scope="module")
def fleet(lab, lab_env, tmp_path_factory):
    assert lab.postgres is not None, "this lab runs without PostgreSQL: `vaultfleet lab down` and `lab up` again"
    fleet = Fleet(
        lab, lab_env, copy_project(tmp_path_factory.mktemp("dbconsumers")), SecretStr(secrets.token_urlsafe(24))
    )
    lab_db.prepare(fleet.pg, fleet.admin_password)
    _declare(fleet)
    try:
        for name in ("vault", CLUSTER):
            result = fleet.stacks[name].up(color="never")
            assert result.summary.result == "succeeded", result.stderr
        fleet.vault.secrets.kv.v2.create_or_update_secret(f"clusters/{CLUSTER}/config", secret=SECRET, mount_point="kv")
        yield fleet
    finally:
        k8s.delete_namespace(fleet.kube, NAMESPACE)
        # Cluster stack first: unmounting the engine revokes every lease left, dropping its users.
        destroy_stacks(fleet.project, lab_env, [CLUSTER, "vault"])
        lab_db.drop(fleet.pg)


@pytest.fixture(scope="module")
def crds(fleet):
    names = consumer_checks.install(fleet.kube, CRDS)
    yield names
    consumer_checks.remove(fleet.kube, names)


def _server(url: str) -> tuple:
    """Where a postgresql:// URL (or URL template) connects: host, port, database, parameters."""
    parts = urlsplit(url)
    return parts.hostname, parts.port, parts.path.lstrip("/"), parts.query


def _engine_connection(fleet: Fleet, creds_path: str) -> tuple:
    """The mount and role behind `<mount>/creds/<role>` exist in Vault; where its connection points."""
    mount, creds, role = creds_path.split("/")
    assert creds == "creds", creds_path
    assert fleet.vault.sys.list_mounted_secrets_engines()["data"][f"{mount}/"]["type"] == "database"
    vault_role = fleet.vault.read(f"{mount}/roles/{role}")["data"]
    connection = fleet.vault.read(f"{mount}/config/{vault_role['db_name']}")["data"]
    server = _server(connection["connection_details"]["connection_url"])
    # ... and that is the lab's PostgreSQL.
    assert server == (fleet.pg.host, fleet.pg.port, fleet.pg.database, "sslmode=disable")
    return server, vault_role["default_ttl"]


def _redacted(text: str, secret: SecretStr) -> str:
    value = secret.get_secret_value()
    for form in {value, unquote(value)} - {""}:
        text = text.replace(form, "<password>")
    return text


def _query(server: tuple, username: str, password: SecretStr) -> tuple[str, list]:
    """Connect where `server` says, as the user Vault handed out; (current_user, the inventory)."""
    host, port, database, query = server
    try:
        with psycopg.connect(
            host=host,
            port=port,
            dbname=database,
            user=username,
            password=password.get_secret_value(),
            connect_timeout=5,
            **dict(parse_qsl(query)),
        ) as conn:
            (user,) = conn.execute("SELECT current_user").fetchone()
            return user, conn.execute("SELECT item, count FROM inventory ORDER BY item").fetchall()
    except psycopg.Error as exc:
        raise AssertionError(f"connecting as {username}: {_redacted(str(exc), password)}") from None


def test_1_consumers_name_the_engine_role_and_connection_vaultfleet_created(fleet):
    config = fleet.consumers("--kind", "agent")
    templates = {Path(t["destination"]).name: t["contents"] for t in config["template"]}
    assert set(templates) == {"config", f"db-{DB_ROLE}"}
    path = re.search(r'with secret "([^"]+)"', templates[f"db-{DB_ROLE}"]).group(1)
    assert path == f"database/creds/{DB_ROLE}"
    server, _ = _engine_connection(fleet, path)
    # No placeholders: the template connects where the engine's connection does.
    (url,) = re.findall(r"postgresql://.+", templates[f"db-{DB_ROLE}"])
    assert _server(url) == server
    # The role's token may read exactly those credentials.
    token = fleet.login(ROLE, ACCOUNT, "vault")
    assert token.sys.get_capabilities(paths=[path])["capabilities"] == ["read"]
    token.auth.token.revoke_self()


def test_2_vault_agent_renders_the_kv_secret_and_a_connection_string_that_connects(fleet, tmp_path):
    config = fleet.consumers("--kind", "agent")
    # What a pod would mount: a TokenRequest token of the bound ServiceAccount, for the role's audience.
    method = config["auto_auth"]["method"][0]
    assert (method["type"], method["mount_path"], method["config"]["role"]) == ("kubernetes", f"auth/{MOUNT}", ROLE)
    k8s.ensure_service_account(fleet.kube, NAMESPACE, ACCOUNT)
    token_file = tmp_path / "token"
    token_file.write_text(k8s.request_token(fleet.kube, NAMESPACE, ACCOUNT, audience="vault"))
    token_file.chmod(0o600)
    # Only file locations change; role, mount, address and templates are vaultfleet's.
    method["config"]["token_path"] = str(token_file)
    rendered = tmp_path / "secrets"
    for template in config["template"]:
        template["destination"] = str(rendered / Path(template["destination"]).name)

    code, output = run_agent(fleet.lab.vault_cli, config, tmp_path)
    try:
        assert code == 0, output
        assert (rendered / "config").read_text() == "".join(f"{k}={v}\n" for k, v in sorted(SECRET.items()))

        text = (rendered / f"db-{DB_ROLE}").read_text()
        url = text.strip()
        parts = urlsplit(url)
        # The parts that are not secret, compared; the password only checked to be there.
        shape = (parts.scheme, text.count("\n"), text.endswith("\n"), bool(parts.password))
        assert shape == ("postgresql", 1, True, True)
        server = _server(url)
        assert server == (fleet.pg.host, fleet.pg.port, fleet.pg.database, "sslmode=disable")
        username = unquote(parts.username)
        assert username.startswith("v-")  # a user the engine created, not one of ours

        # The string as a client takes it (libpq parses the URL and undoes the %-escapes).
        try:
            with psycopg.connect(url, connect_timeout=5) as conn:
                (user,) = conn.execute("SELECT current_user").fetchone()
                rows = conn.execute("SELECT item, count FROM inventory ORDER BY item").fetchall()
        except psycopg.Error as exc:
            raise AssertionError(
                f"the rendered connection string does not connect: {_redacted(str(exc), SecretStr(parts.password))}"
            ) from None
        assert (user, rows) == (username, lab_db.INVENTORY)
        with lab_db.superuser(fleet.pg) as conn:
            (valid_until,) = conn.execute(
                "SELECT rolvaliduntil FROM pg_roles WHERE rolname = %s", (username,)
            ).fetchone()
        assert valid_until is not None  # VALID UNTIL '{{expiration}}': the user dies with its lease

        # The agent's lease is a real one: revoking it drops the user, and the string stops working.
        fleet.vault.sys.revoke_prefix(f"database/creds/{DB_ROLE}")
        with pytest.raises(psycopg.OperationalError) as refused:
            psycopg.connect(url, connect_timeout=5).close()
        assert "password authentication failed" in str(refused.value)
    finally:
        shutil.rmtree(rendered, ignore_errors=True)
        token_file.unlink(missing_ok=True)


def _created(fleet: Fleet, documents: list[dict]) -> dict[tuple[str, str], dict]:
    """Every document created under the real CRDs as generated; (kind, name) -> the stored object."""
    stored = {}
    for document in documents:
        kept = create_strict(fleet.kube, document)
        assert_subset(document["spec"], kept["spec"])
        stored[kept["kind"], kept["metadata"]["name"]] = kept
    return stored


def test_3_eso_generator_and_external_secret_are_accepted_and_match_vault(fleet, crds):
    stored = _created(fleet, fleet.consumers("--kind", "eso"))
    generator = stored["VaultDynamicSecret", f"db-{DB_ROLE}"]
    external = stored["ExternalSecret", f"db-{DB_ROLE}"]
    assert generator["apiVersion"] == "generators.external-secrets.io/v1alpha1"
    assert {k for k, _ in stored} == {"SecretStore", "ExternalSecret", "VaultDynamicSecret"}

    provider = generator["spec"]["provider"]
    assert provider["server"] == fleet.lab.vault_addr
    auth = provider["auth"]["kubernetes"]
    account = auth["serviceAccountRef"]
    assert_role_admits(
        fleet.vault, auth["mountPath"], auth["role"], NAMESPACE, account["name"], account.get("audiences")
    )
    # The ExternalSecret runs exactly this generator.
    (source,) = external["spec"]["dataFrom"]
    ref = source["sourceRef"]["generatorRef"]
    assert (ref["apiVersion"], ref["kind"], ref["name"]) == (
        generator["apiVersion"],
        generator["kind"],
        generator["metadata"]["name"],
    )

    path = generator["spec"]["path"]
    server, lease = _engine_connection(fleet, path)
    assert _server(external["spec"]["target"]["template"]["data"]["url"]) == server
    # external-secrets does not renew: new credentials come before the old lease ends.
    assert int(external["spec"]["refreshInterval"].removesuffix("s")) < lease

    # What the generator does: log in as the ServiceAccount, GET the path, hand out username and password.
    assert (generator["spec"]["method"], generator["spec"]["resultType"]) == ("GET", "Data")
    token = fleet.login(auth["role"], account["name"], account["audiences"][0])
    creds = token.read(path)
    user, rows = _query(server, creds["data"]["username"], SecretStr(creds["data"]["password"]))
    assert (user, rows) == (creds["data"]["username"], lab_db.INVENTORY)
    token.sys.revoke_lease(creds["lease_id"])
    token.auth.token.revoke_self()


def test_4_vso_vault_dynamic_secret_is_accepted_and_matches_vault(fleet, crds):
    stored = {kind: o for (kind, _), o in _created(fleet, fleet.consumers("--kind", "vso")).items()}
    dynamic, auth, connection = stored["VaultDynamicSecret"], stored["VaultAuth"], stored["VaultConnection"]
    assert dynamic["metadata"]["name"] == f"db-{DB_ROLE}"

    assert dynamic["spec"]["vaultAuthRef"] == auth["metadata"]["name"]
    assert auth["spec"]["vaultConnectionRef"] == connection["metadata"]["name"]
    assert connection["spec"]["address"] == fleet.lab.vault_addr
    kube = auth["spec"]["kubernetes"]
    assert_role_admits(
        fleet.vault, auth["spec"]["mount"], kube["role"], NAMESPACE, kube["serviceAccount"], kube.get("audiences")
    )

    # VSO reads <mount>/<path>: mount and path apart.
    path = f"{dynamic['spec']['mount']}/{dynamic['spec']['path']}"
    server, _ = _engine_connection(fleet, path)
    template = dynamic["spec"]["destination"]["transformation"]["templates"]["url"]["text"]
    assert _server(template) == server
    assert dynamic["spec"]["revoke"] is True and dynamic["spec"]["destination"]["create"] is True

    # What VSO does: log in through the VaultAuth, read the path, renew, and revoke on deletion.
    token = fleet.login(kube["role"], kube["serviceAccount"], kube["audiences"][0])
    creds = token.read(path)
    user, _ = _query(server, creds["data"]["username"], SecretStr(creds["data"]["password"]))
    assert user == creds["data"]["username"]
    assert token.sys.renew_lease(creds["lease_id"])["lease_id"] == creds["lease_id"]
    token.sys.revoke_lease(creds["lease_id"])
    with pytest.raises(AssertionError, match="password authentication failed"):
        _query(server, creds["data"]["username"], SecretStr(creds["data"]["password"]))
    token.auth.token.revoke_self()


def test_5_injector_patch_names_the_credentials_and_revokes_them_with_the_pod(fleet):
    (patch,) = fleet.consumers("--kind", "injector")
    pod = patched_pod_template(fleet.kube, NAMESPACE, "orders", patch)
    annotations = pod.metadata.annotations
    path = annotations[f"vault.hashicorp.com/agent-inject-secret-db-{DB_ROLE}"]
    server, _ = _engine_connection(fleet, path)
    (url,) = re.findall(r"postgresql://.+", annotations[f"vault.hashicorp.com/agent-inject-template-db-{DB_ROLE}"])
    assert _server(url) == server
    assert annotations["vault.hashicorp.com/agent-revoke-on-shutdown"] == "true"
    assert annotations["vault.hashicorp.com/role"] == ROLE and pod.spec.service_account_name == ACCOUNT
