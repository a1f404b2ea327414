"""Consumers of KV secrets and dynamic PostgreSQL credentials, for real: what `vaultfleet consumers`
generates for a role granted db-creds, run by Vault Agent, applied under the external-secrets and
VSO CRDs, and synced by the real controllers (external-secrets, VSO, the agent injector:
vaultfleet/lab/controllers.py).

One module over 300 lines: its tests walk one fleet through its life, and that fleet (the engine on
the lab's PostgreSQL, two stacks up, every CRD installed, three controllers running) is a module
fixture, brought up once; split, each module would bring it up again.

The fleet: the shared stack's database engine with a connection to the lab's PostgreSQL, and lab-a's
role `orders` (kv-read and db-creds, `consumers: [eso, vso]`) for shop/orders. The tests share it,
brought up once by the fixture; none depends on another (the two operators write Secrets of the
same names: each of their tests starts and ends without them).

A rendered connection string holds a password: the tests compare its parts but never the whole
string, wrap connection errors so that it cannot appear in them, hand passwords to helpers as
SecretStr (pytest prints a failing frame's arguments), and delete the rendered files.
"""

from __future__ import annotations

import base64
import copy
import re
import secrets
import shutil
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import hvac
import psycopg
import pytest
from kubernetes import client
from pydantic import SecretStr
from typer.testing import CliRunner

from tests.harness import Fleet, copy_project, destroy_stacks, up_stacks
from tests.lab import consumer_checks, k8s
from tests.lab import database as lab_db
from tests.lab.agent import run_agent
from tests.lab.consumer_checks import assert_role_admits, assert_subset, create_strict, patched_pod_template
from vaultfleet.lab import controllers as lab_controllers
from vaultfleet.lab import processes
from vaultfleet.lab.record import LabState

# Server-dependent, the whole module: the server's database engine issues the credentials the
# generated objects name, and its own agent renders them.
pytestmark = [pytest.mark.lab, pytest.mark.server]
runner = CliRunner()

CLUSTER, MOUNT = "lab-a", "k8s-lab-a"
ROLE, NAMESPACE, ACCOUNT = "orders", "shop", "orders"  # lab-a's Vault role and the ServiceAccount it binds
DB_ROLE = "app-readonly"  # the shared stack's database role lab-a declares
TTL = 24  # seconds: its credentials' lease
RENEWAL_PERCENT = 20  # of the lease, when VSO renews it (test_4)
SECRET = {"greeting": "hello-orders"}  # the KV secret the role reads beside its credentials


@pytest.fixture(scope="module")
def fleet(lab, lab_env, tmp_path_factory):
    assert lab.postgres is not None, "this lab runs without PostgreSQL: `vaultfleet lab down` and `lab up` again"
    project = copy_project(tmp_path_factory.mktemp("dbconsumers"))
    fleet = Fleet(lab, lab_env, project, cluster=CLUSTER, admin_password=SecretStr(secrets.token_urlsafe(24)))
    # The stack files as a user writes them. A short lease, so that VSO renews it within a test (at
    # RENEWAL_PERCENT of it) and external-secrets refreshes at half of it.
    fleet.declare_database(
        [{"name": DB_ROLE, "revocationStatements": lab_db.REVOKE, "defaultTtl": f"{TTL}s", "maxTtl": "1h"}],
        {
            "name": ROLE,
            "serviceAccounts": [ACCOUNT],
            "namespaces": [NAMESPACE],
            "policies": ["kv-read", "db-creds"],
            "ttl": "15m",
            "audience": "vault",
            # `up` makes its SecretStore, VaultConnection and VaultAuth: the tests' objects use them.
            "consumers": ["eso", "vso"],
        },
        [DB_ROLE],
    )
    # Every CRD of both projects: their controllers watch every kind (and `up` makes some).
    crds = consumer_checks.install(fleet.kube, consumer_checks.all_crds())
    # The workload's namespace (where `up` puts its stores) and ServiceAccount: the user's, not vaultfleet's.
    k8s.ensure_service_account(fleet.kube, NAMESPACE, ACCOUNT)
    cluster = next(c for c in lab.clusters if c.name == CLUSTER)
    try:
        up_stacks(fleet.project, lab_env, ["vault", CLUSTER])
        fleet.vault.secrets.kv.v2.create_or_update_secret(f"clusters/{CLUSTER}/config", secret=SECRET, mount_point="kv")
        # The real external-secrets, VSO and injector on lab-a (lab/controllers.py), until the
        # namespace and the stacks are gone: VSO's finalizers on its objects need VSO to go.
        # lab.json as it is now (the session's `lab` is as it was at the start: another module may
        # have restarted a process since, and saving that old record would lose the new one).
        state = LabState.load()
        lab_controllers.start_external_secrets(state, cluster)
        lab_controllers.start_secrets_operator(state, cluster)
        lab_controllers.start_injector(state, cluster, lab.vault_addr)
        yield fleet
    finally:
        k8s.delete_namespace(fleet.kube, NAMESPACE)
        # Cluster stack first: unmounting the engine revokes every lease left, dropping its users.
        destroy_stacks(fleet.project, lab_env, [CLUSTER, "vault"])
        lab_controllers.stop(LabState.load(), cluster, lab_controllers.KINDS)
        consumer_checks.remove(fleet.kube, crds)
        lab_db.drop(fleet.pg)


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
    config = fleet.consumers("--role", ROLE, "--kind", "agent")
    templates = {Path(t["destination"]).name: t["contents"] for t in config["template"]}
    assert set(templates) == {"config", f"db-{DB_ROLE}"}
    path = re.search(r'with secret "([^"]+)"', templates[f"db-{DB_ROLE}"]).group(1)
    assert path == f"database/creds/{DB_ROLE}"
    server, _ = _engine_connection(fleet, path)
    # No placeholders: the template connects where the engine's connection does.
    (url,) = re.findall(r"postgresql://.+", templates[f"db-{DB_ROLE}"])
    assert _server(url) == server
    # The role's token may read exactly those credentials.
    token = fleet.login(ROLE, NAMESPACE, ACCOUNT, "vault")
    assert token.sys.get_capabilities(paths=[path])["capabilities"] == ["read"]
    token.auth.token.revoke_self()


def test_2_vault_agent_renders_the_kv_secret_and_a_connection_string_that_connects(fleet, tmp_path):
    config = fleet.consumers("--role", ROLE, "--kind", "agent")
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
    """Every document created under the real CRDs as generated (one `up` made already: compared
    with what `up` made); (kind, name) -> the stored object."""
    stored = {}
    for document in documents:
        try:
            kept = create_strict(fleet.kube, document)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
            kept = consumer_checks.read(fleet.kube, document)
        assert_subset(document["spec"], kept["spec"])
        stored[kept["kind"], kept["metadata"]["name"]] = kept
    return stored


# What each controller marks the Secrets it writes with (labels), beside its owner reference.
MARKS = {
    "ExternalSecret": {"reconcile.external-secrets.io/managed": "true"},
    "VaultStaticSecret": {
        "app.kubernetes.io/managed-by": "hashicorp-vso",
        "app.kubernetes.io/component": "secret-sync",
    },
}
MARKS["VaultDynamicSecret"] = MARKS["VaultStaticSecret"]


def _synced(fleet: Fleet, name: str, owner: str, timeout: float = 60) -> dict[str, str]:
    """The Kubernetes Secret `name` in the role's namespace once the object of kind `owner` (its
    controller) has written it, decoded; it carries that controller's marks."""
    core = client.CoreV1Api(fleet.kube)

    def read():
        try:
            secret = core.read_namespaced_secret(name, NAMESPACE)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        if not any(ref.kind == owner and ref.name == name for ref in secret.metadata.owner_references or []):
            return None
        return secret

    secret = processes.wait_until(read, timeout, f"Secret {NAMESPACE}/{name} from a {owner}")
    labels = secret.metadata.labels or {}
    assert {k: labels.get(k) for k in MARKS[owner]} == MARKS[owner], secret.metadata
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}


def _made_by_up(stored: dict) -> None:
    """The object is the one `up` made (roles[].consumers), not one a test created."""
    managers = {entry["manager"] for entry in stored["metadata"].get("managedFields", [])}
    assert any(m.startswith("pulumi") for m in managers), managers  # the kubernetes provider's field manager


# What the two operators sync into the same Secret names: each test starts and ends without them.
_SYNCING = [
    ("external-secrets.io/v1", "ExternalSecret"),
    ("generators.external-secrets.io/v1alpha1", "VaultDynamicSecret"),
    ("secrets.hashicorp.com/v1beta1", "VaultStaticSecret"),
    ("secrets.hashicorp.com/v1beta1", "VaultDynamicSecret"),
]


def _without_synced_secrets(fleet: Fleet) -> None:
    """No syncing object and no synced Secret left in the namespace (a VSO object goes only once
    its finalizer has revoked the lease)."""
    objects, core = client.CustomObjectsApi(fleet.kube), client.CoreV1Api(fleet.kube)

    def left() -> list[dict]:
        return [
            item
            for api_version, kind in _SYNCING
            for item in objects.list_namespaced_custom_object(*api_version.split("/"), NAMESPACE, kind.lower() + "s")[
                "items"
            ]
        ]

    for item in left():
        consumer_checks.delete(fleet.kube, item)
    processes.wait_until(lambda: not left(), 60, "the syncing objects gone")
    for name in ("config", f"db-{DB_ROLE}"):
        try:
            core.delete_namespaced_secret(name, NAMESPACE)
        except client.ApiException as exc:
            if exc.status != 404:
                raise


@pytest.fixture()
def synced(fleet):
    _without_synced_secrets(fleet)
    yield
    _without_synced_secrets(fleet)


def test_3_external_secrets_syncs_the_kv_secret_and_credentials_that_connect(fleet, synced):
    stored = _created(fleet, fleet.consumers("--role", ROLE, "--kind", "eso"))
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

    # The real controller: the store `up` made logs in, and both ExternalSecrets sync through it.
    (store,) = [o for (kind, _), o in stored.items() if kind == "SecretStore"]
    _made_by_up(store)
    assert consumer_checks.condition(fleet.kube, store, "Ready")["reason"] == "Valid"
    assert _synced(fleet, "config", "ExternalSecret") == SECRET
    creds = _synced(fleet, f"db-{DB_ROLE}", "ExternalSecret")
    assert set(creds) == {"username", "password", "url"}
    assert (creds["username"].startswith("v-"), _server(creds["url"])) == (True, server)
    user, rows = _query(server, creds["username"], SecretStr(creds["password"]))
    assert (user, rows) == (creds["username"], lab_db.INVENTORY)

    # The ClusterSecretStore `--cluster-store` prints logs in as well.
    (cluster_store,) = [
        d
        for d in fleet.consumers("--role", ROLE, "--kind", "eso", "--cluster-store")
        if d["kind"] == "ClusterSecretStore"
    ]
    stored_cluster_store = create_strict(fleet.kube, cluster_store)
    try:
        assert consumer_checks.condition(fleet.kube, stored_cluster_store, "Ready")["reason"] == "Valid"
    finally:
        consumer_checks.delete(fleet.kube, stored_cluster_store)

    # A store logging in as a ServiceAccount the role does not bind: not Ready, and Vault said why.
    k8s.ensure_service_account(fleet.kube, NAMESPACE, "intruder")
    intruder = copy.deepcopy(store)
    intruder["metadata"] = {"name": "intruder", "namespace": NAMESPACE}
    intruder["spec"]["provider"]["vault"]["auth"]["kubernetes"]["serviceAccountRef"]["name"] = "intruder"
    refused = consumer_checks.condition(fleet.kube, create_strict(fleet.kube, intruder), "Ready", status="False")
    assert refused["reason"] == "InvalidProviderConfig", refused
    # The condition says "unable to create client"; Vault's own answer is in the store's event.
    said = consumer_checks.events_of(fleet.kube, intruder, lambda message: "Code: 403" in message)
    assert "permission denied" in said or "not authorized" in said, said


def test_4_vso_syncs_the_kv_secret_renews_the_credentials_and_revokes_them_on_delete(fleet, synced):
    documents = fleet.consumers("--role", ROLE, "--kind", "vso")
    # Renewal at a fifth of the lease instead of VSO's default two thirds: the same renewal, 11 s sooner.
    next(d for d in documents if d["kind"] == "VaultDynamicSecret")["spec"]["renewalPercent"] = RENEWAL_PERCENT
    stored = {kind: o for (kind, _), o in _created(fleet, documents).items()}
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

    # The real operator, through the VaultConnection and VaultAuth `up` made.
    _made_by_up(auth)
    assert consumer_checks.vso_valid(fleet.kube, auth)
    static = _synced(fleet, "config", "VaultStaticSecret")
    assert {k: static[k] for k in SECRET} == SECRET
    creds = _synced(fleet, f"db-{DB_ROLE}", "VaultDynamicSecret")
    assert _server(creds["url"]) == server
    user, rows = _query(server, creds["username"], SecretStr(creds["password"]))
    assert (user, rows) == (creds["username"], lab_db.INVENTORY)
    # It renews the lease (at RENEWAL_PERCENT of it) instead of taking new credentials...
    lease_id = consumer_checks.vso_lease(fleet.kube, dynamic)
    renewed = processes.wait_until(
        lambda: fleet.vault.write("sys/leases/lookup", lease_id=lease_id)["data"]["last_renewal"], TTL * 2, "renewal"
    )
    assert renewed and _synced(fleet, f"db-{DB_ROLE}", "VaultDynamicSecret")["username"] == creds["username"]
    # ... and revokes it when the object goes: the user is dropped.
    consumer_checks.delete(fleet.kube, dynamic)
    processes.wait_until(lambda: not _lease_exists(fleet, lease_id), 60, "revocation")
    with pytest.raises(AssertionError, match="password authentication failed"):
        _query(server, creds["username"], SecretStr(creds["password"]))


def _lease_exists(fleet: Fleet, lease_id: str) -> bool:
    try:
        fleet.vault.write("sys/leases/lookup", lease_id=lease_id)
    except hvac.exceptions.InvalidRequest:
        return False
    return True


def test_5_the_real_injector_mutates_a_pod_whose_agent_renders_what_the_role_reads(fleet, tmp_path):
    (patch,) = fleet.consumers("--role", ROLE, "--kind", "injector")
    template = patched_pod_template(fleet.kube, NAMESPACE, "orders", patch)
    annotations = template.metadata.annotations
    path = annotations[f"vault.hashicorp.com/agent-inject-secret-db-{DB_ROLE}"]
    server, _ = _engine_connection(fleet, path)
    (url,) = re.findall(r"postgresql://.+", annotations[f"vault.hashicorp.com/agent-inject-template-db-{DB_ROLE}"])
    assert _server(url) == server
    assert annotations["vault.hashicorp.com/agent-revoke-on-shutdown"] == "true"
    assert annotations["vault.hashicorp.com/role"] == ROLE and template.spec.service_account_name == ACCOUNT

    # A Pod of that template where the webhook serves: the injector adds its agent (no kubelet
    # runs it; the server's own agent runs the config the injector wrote, as its init container would).
    pod = consumer_checks.injected_pod(fleet.kube, NAMESPACE, "orders", template)
    config = consumer_checks.agent_config(pod, "vault-agent-init")
    method = config["auto_auth"]["method"]
    assert (method["type"], method["mount_path"], method["config"]["role"]) == ("kubernetes", f"auth/{MOUNT}", ROLE)
    assert config["vault"]["address"] == fleet.lab.vault_addr
    token_file = tmp_path / "token"
    token_file.write_text(k8s.request_token(fleet.kube, NAMESPACE, ACCOUNT, audience="vault"))
    method["config"]["token_path"] = str(token_file)
    rendered = tmp_path / "secrets"
    for sink in config["auto_auth"].get("sink", []):
        sink["config"]["path"] = str(tmp_path / "sink-token")
    for entry in config["template"]:
        entry["destination"] = str(rendered / Path(entry["destination"]).name)
    config.pop("pid_file", None)
    code, output = run_agent(fleet.lab.vault_cli, config, tmp_path)
    try:
        assert code == 0, output
        assert (rendered / "config").read_text().strip() != ""
        for key, value in SECRET.items():
            assert value in (rendered / "config").read_text() and key in (rendered / "config").read_text()
        parts = urlsplit((rendered / f"db-{DB_ROLE}").read_text().strip())
        user, rows = _query(_server(parts.geturl()), unquote(parts.username), SecretStr(unquote(parts.password)))
        assert (user, rows) == (unquote(parts.username), lab_db.INVENTORY)
    finally:
        shutil.rmtree(rendered, ignore_errors=True)
        (tmp_path / "sink-token").unlink(missing_ok=True)
