"""Clusters without a long-lived reviewer token (issue 15), three modes side by side on one Vault:
lab-a in `client-jwt` mode (Vault reviews each login with the login's own token), lab-b in today's
`reviewer-token` mode, lab-c in `jwt` mode (Vault's jwt method with lab-c's issuer keys). No
reviewer ServiceAccount, token Secret or stored JWT exists for lab-a or lab-c anywhere.

lab-a's and lab-c's stacks run as their appliers (the policies pin each mode), and their roles cover
an audience-bound role, one without (client-jwt), and a namespace-templated one. In jwt mode the
shared stack pins lab-c's issuer and signing keys in the applier policy: a rotated key goes through
it, and the applier cannot trust a key of its own and forge logins.

Every refusal is matched by its reason (tests/lab/refusals.py), after the same identity's legitimate
request succeeded, and the target is re-read unchanged after.

One module over 300 lines: its tests share that fleet (four stacks up, the database engine, each
mode's appliers), brought up once by a module fixture; split by mode, each module would bring it
up again.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
import time

import hvac
import psycopg
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from kubernetes import client
from pydantic import SecretStr
from typer.testing import CliRunner

from tests.harness import (
    copy_project,
    destroy_stacks,
    edit_stack,
    login,
    root_client,
    use_lab_for_cli,
    vault_token,
)
from tests.lab import database as lab_db
from tests.lab import k8s
from tests.lab.agent import run_agent
from tests.lab.refusals import denied, refused
from vaultfleet.cli import app
from vaultfleet.fleet.engine import pulumi_command, select_stack
from vaultfleet.kube import issuer_keys
from vaultfleet.lab.record import LabState

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab_cli")]
runner = CliRunner()
DB_ROLE = "reader"  # the shared stack's database role both new-mode clusters may read


def api_audience(lab, cluster: str) -> str:
    """The API server's own audience: its ServiceAccount issuer (kube-apiserver's default)."""
    api = k8s.api_client(str(lab.kubeconfig), cluster)
    discovery = client.WellKnownApi(api).get_service_account_issuer_open_id_configuration(_preload_content=False)
    return json.loads(discovery.data)["issuer"]


def _client_jwt(config: dict, audience: str) -> None:
    config["vaultfleet:cluster"]["authMode"] = "client-jwt"
    config["vaultfleet:policies"] = ["kv-read", "kv-write", "kv-namespace", "db-creds"]
    config["vaultfleet:databaseRoles"] = [DB_ROLE]
    config["vaultfleet:roles"] = [
        # A role audience must be one the API server accepts: Vault presents the token to it.
        {
            "name": "app",
            "serviceAccounts": ["app"],
            "namespaces": ["app"],
            "policies": ["kv-read"],
            "audience": audience,
        },
        {
            "name": "deployer",
            "serviceAccounts": ["deployer"],
            "namespaces": ["ci"],
            "policies": ["kv-read", "kv-write", "db-creds"],
        },
        {"name": "team", "serviceAccounts": ["app"], "namespaces": ["team-x", "team-y"], "policies": ["kv-namespace"]},
    ]


def _jwt(config: dict) -> None:
    config["vaultfleet:cluster"] = {"kubeContext": "lab-c", "authMode": "jwt"}
    config["vaultfleet:policies"] = ["kv-read", "kv-namespace", "db-creds"]
    config["vaultfleet:databaseRoles"] = [DB_ROLE]
    config["vaultfleet:roles"] = [
        {
            "name": "app",
            "serviceAccounts": ["app"],
            "namespaces": ["app"],
            "policies": ["kv-read", "db-creds"],
            "audience": "vault",
        },
        {
            "name": "team",
            "serviceAccounts": ["app"],
            "namespaces": ["team-x", "team-y"],
            "policies": ["kv-namespace"],
            "audience": "vault",
        },
    ]


@pytest.fixture(scope="module")
def project(lab, lab_env, tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("modes"))
    # The fleet's database engine on the lab's PostgreSQL: db-creds works in every mode.
    admin_password = SecretStr(secrets.token_urlsafe(24))
    lab_db.prepare(lab.postgres, admin_password)
    roles = [{"name": DB_ROLE, "revocationStatements": lab_db.REVOKE, "defaultTtl": "5m", "maxTtl": "30m"}]
    edit_stack(project, "vault", lambda c: c.update({"vaultfleet:database": lab_db.engine_config(lab.postgres, roles)}))
    lab_db.set_admin_password(select_stack("vault", project, lab_env), admin_password)
    audience = api_audience(lab, "lab-a")
    edit_stack(project, "lab-a", lambda config: _client_jwt(config, audience))
    (project / "stacks/Pulumi.lab-c.yaml").write_text((project / "stacks/Pulumi.lab-b.yaml").read_text())
    edit_stack(project, "lab-c", _jwt)
    root = root_client(lab)
    with pytest.MonkeyPatch.context() as mp:
        use_lab_for_cli(mp, project, lab_env)
        assert runner.invoke(app, ["up", "vault", "lab-b"]).exit_code == 0  # admin: shared stack, lab-b
        with vault_token(root, ["vaultfleet-apply-lab-a", "vaultfleet-apply-lab-c"], "30m") as token:
            mp.setenv("VAULT_TOKEN", token)
            result = runner.invoke(app, ["up", "lab-a", "lab-c"])  # their appliers
            assert result.exit_code == 0, result.output
    yield project
    destroy_stacks(project, lab_env, ["lab-a", "lab-b", "lab-c", "vault"])
    lab_db.drop(lab.postgres)


def read(vault: hvac.Client, path: str) -> dict:
    return vault.secrets.kv.v2.read_secret_version(path, mount_point="kv", raise_on_deleted_version=True)["data"][
        "data"
    ]


def token_for(lab, cluster: str, audiences: list[str], namespace: str = "app", account: str = "app") -> str:
    """A TokenRequest token of namespace/account in `cluster`, for every one of `audiences`."""
    api = k8s.api_client(str(lab.kubeconfig), cluster)
    k8s.ensure_service_account(api, namespace, account)
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=audiences, expiration_seconds=600)
    )
    return client.CoreV1Api(api).create_namespaced_service_account_token(account, namespace, request).status.token


def api_review(lab, cluster: str, jwt: str) -> client.V1TokenReviewStatus:
    """What `cluster`'s API server says of `jwt`, for its own audiences (a TokenReview by the lab's
    admin): the question Vault's kubernetes method asks it at a login."""
    api = k8s.api_client(str(lab.kubeconfig), cluster)
    review = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=jwt))
    return client.AuthenticationV1Api(api).create_token_review(review).status


# The kubernetes method names the binding it refuses...
NAME_NOT_BOUND = "service account name not authorized"
NAMESPACE_NOT_BOUND = "namespace not authorized"
# ...but a login whose TokenReview fails (the API server does not authenticate the token) gets
# Vault's bare answer, nothing more: the tests that expect it ask the API server why (api_review).
REVIEW_FAILED = r"^permission denied, on "
# The API server, of a token it did not issue: its issuer is not the server's, so no key of its own
# checks it.
NOT_ISSUED_HERE = r"invalid bearer token"
# jwt method: none of the mount's keys signed the token.
SIGNATURE = r"no known key successfully validated the token signature"
# jwt method: the token's aud lacks the role's bound audience.
AUDIENCE = r"invalid audience \(aud\) claim"


def bound_claim(claim: str) -> str:
    """jwt method: `claim` is not among the role's bound values."""
    return f'claim "{re.escape(claim)}" does not match any associated bound claim values'


@pytest.mark.server
def test_1_every_role_logs_in_with_its_own_token_and_reads_its_path(lab, project):
    root = root_client(lab)
    audience = api_audience(lab, "lab-a")
    for namespace in ("app", "team-x", "team-y"):
        root.secrets.kv.v2.create_or_update_secret(
            f"clusters/lab-a/namespaces/{namespace}/db", {"owner": namespace}, mount_point="kv"
        )
    root.secrets.kv.v2.create_or_update_secret("clusters/lab-a/db", {"owner": "lab-a"}, mount_point="kv")
    assert read(login(lab, "lab-a", "app", "app", "app", audience), "clusters/lab-a/db") == {"owner": "lab-a"}
    deployer = login(lab, "lab-a", "deployer", "ci", "deployer", None)
    deployer.secrets.kv.v2.create_or_update_secret("clusters/lab-a/ci", {"by": "deployer"}, mount_point="kv")
    # One role, two namespaces: each its own subtree only (the policy templates on the login's alias).
    for mine, other in (("team-x", "team-y"), ("team-y", "team-x")):
        team = login(lab, "lab-a", "team", mine, "app", None)
        assert read(team, f"clusters/lab-a/namespaces/{mine}/db") == {"owner": mine}
        with pytest.raises(hvac.exceptions.Forbidden):
            read(team, f"clusters/lab-a/namespaces/{other}/db")


# What each role of lab-a binds: (namespace, ServiceAccount, token audience); "audience" is the API
# server's own.
BOUND = {"app": ("app", "app", "audience"), "deployer": ("ci", "deployer", None)}
# (role, namespace, ServiceAccount, token audience, the reason Vault gives)
REFUSED = {
    "a ServiceAccount the role does not bind": ("app", "app", "other", "audience", NAME_NOT_BOUND),
    "a namespace the role does not bind": ("app", "other", "app", "audience", NAMESPACE_NOT_BOUND),
    # Vault presents the token to the API server, which takes only its own audience: the bindings
    # pass, the review fails (the API server's own answer is checked below).
    "a token for the role's audience only": ("deployer", "ci", "deployer", "vault", REVIEW_FAILED),
}


@pytest.mark.server
@pytest.mark.parametrize("case", list(REFUSED))
def test_2_a_login_outside_the_roles_bindings_is_refused(lab, project, case):
    role, namespace, account, audience, reason = REFUSED[case]
    api_aud = api_audience(lab, "lab-a")
    root = root_client(lab)
    before = root.read(f"auth/k8s-lab-a/role/{role}")["data"]
    # Positive control: the role's own ServiceAccount, with a token the API server takes, logs in.
    bound_namespace, bound_account, bound_audience = BOUND[role]
    own = api_aud if bound_audience == "audience" else bound_audience
    login(lab, "lab-a", role, bound_namespace, bound_account, own).auth.token.revoke_self()
    token_audience = api_aud if audience == "audience" else audience
    refused(lambda: login(lab, "lab-a", role, namespace, account, token_audience), reason)
    if reason == REVIEW_FAILED:
        jwt = k8s.request_token(k8s.api_client(str(lab.kubeconfig), "lab-a"), namespace, account, token_audience)
        status = api_review(lab, "lab-a", jwt)
        assert not status.authenticated and re.search(r"token audiences .*is invalid", status.error), status
    assert root.read(f"auth/k8s-lab-a/role/{role}")["data"] == before


def role_audience(lab, cluster: str) -> str:
    """The audience of role `app` of `cluster`: lab-a's (client-jwt) is its API server's, the others' `vault`."""
    return api_audience(lab, "lab-a") if cluster == "lab-a" else "vault"


def mode_login(lab, cluster: str, jwt: str, role: str = "app") -> hvac.Client:
    """A login at `cluster`'s mount with its method: jwt for lab-c, kubernetes for the others."""
    return login(lab, cluster, role, jwt=jwt, method="jwt" if cluster == "lab-c" else "kubernetes")


# Why a mount refuses another cluster's token: the reason that proves isolation.
FOREIGN = {
    "lab-a": REVIEW_FAILED,  # client-jwt: lab-a's API server does not authenticate the token
    "lab-b": REVIEW_FAILED,  # reviewer-token: lab-b's TokenReview does not authenticate it
    "lab-c": SIGNATURE,  # jwt: none of lab-c's keys signed it
}


def assert_isolated(lab, cluster: str, other: str) -> None:
    """A token of app/app in `cluster` logs in at its own mount and is refused at `other`'s, for
    the token's origin alone: it carries `other`'s role audience beside its own and `other`'s role
    binds app/app, so neither the audience nor a binding is at fault."""
    jwt = token_for(lab, cluster, sorted({role_audience(lab, cluster), role_audience(lab, other)}))
    mode_login(lab, cluster, jwt).auth.token.revoke_self()  # positive control: at home, it logs in
    root = root_client(lab)
    before = root.read(f"auth/k8s-{other}/role/app")["data"]
    refused(lambda: mode_login(lab, other, jwt), FOREIGN[other])
    if FOREIGN[other] == REVIEW_FAILED:  # Vault says no more: the API server it asked says why
        status = api_review(lab, other, jwt)
        assert not status.authenticated and re.search(NOT_ISSUED_HERE, status.error), (cluster, other, status)
    assert root.read(f"auth/k8s-{other}/role/app")["data"] == before


@pytest.mark.server
@pytest.mark.parametrize("cluster, other", [("lab-a", "lab-b"), ("lab-b", "lab-a")])
def test_3_the_clusters_of_both_modes_are_isolated_from_each_other(lab, project, cluster, other):
    assert_isolated(lab, cluster, other)


@pytest.mark.server
def test_4_no_reviewer_token_in_kubernetes_vault_or_state(lab, lab_env, project):
    core = client.CoreV1Api(k8s.api_client(str(lab.kubeconfig), "lab-a"))
    accounts = [a.metadata.name for a in core.list_namespaced_service_account("kube-system").items]
    secrets = [s.metadata.name for s in core.list_namespaced_secret("kube-system").items]
    assert "vault-auth" not in accounts and "vault-auth-token" not in secrets
    in_vault = root_client(lab).read("auth/k8s-lab-a/config")["data"]
    assert in_vault["disable_local_ca_jwt"] is True and not in_vault.get("token_reviewer_jwt_set")
    shown = pulumi_command().run(["stack", "export", "--show-secrets", "--stack", "lab-a"], str(project), lab_env)
    resources = json.loads(shown.stdout)["deployment"]["resources"]
    assert not [r for r in resources if r["type"] == "kubernetes:core/v1:Secret"]
    (config,) = [r for r in resources if r["type"] == "vault:kubernetes/authBackendConfig:AuthBackendConfig"]
    jwt = config["outputs"].get("tokenReviewerJwt")
    if isinstance(jwt, dict) and "plaintext" in jwt:  # a secret, as --show-secrets prints it
        jwt = json.loads(jwt["plaintext"])
    assert not jwt, "a reviewer JWT is kept in lab-a's state"
    rbac = client.RbacAuthorizationV1Api(k8s.api_client(str(lab.kubeconfig), "lab-a"))
    binding = rbac.read_cluster_role_binding("vaultfleet-client-token-review")
    assert binding.role_ref.name == "system:auth-delegator"
    named = sorted((s.namespace, s.name) for s in binding.subjects)
    assert named == [("app", "app"), ("ci", "deployer"), ("team-x", "app"), ("team-y", "app")]


@pytest.mark.server
def test_5_the_servers_agent_logs_in_and_renders_in_client_jwt_mode(lab, project, tmp_path):
    result = runner.invoke(app, ["consumers", "lab-a", "--kind", "agent", "--role", "deployer", "--format", "json"])
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout)
    (template,) = [t for t in config["template"] if "kv/data/" in t["contents"]]  # the KV one (db-creds too)
    path = re.search(r'with secret "([^"]+)"', template["contents"]).group(1)
    root_client(lab).secrets.kv.v2.create_or_update_secret(
        path.removeprefix("kv/data/"), {"user": "deployer", "password": "pw"}, mount_point="kv"
    )
    # What the pod mounts: its default token (the API server's audience).
    token_file = tmp_path / "token"
    token_file.write_text(k8s.request_token(k8s.api_client(str(lab.kubeconfig), "lab-a"), "ci", "deployer"))
    token_file.chmod(0o600)
    config["auto_auth"]["method"][0]["config"]["token_path"] = str(token_file)
    template["destination"] = str(tmp_path / "rendered")
    code, output = run_agent(lab.vault_cli, config, tmp_path)
    assert code == 0, output
    assert (tmp_path / "rendered").read_text() == "password=pw\nuser=deployer\n"


@pytest.mark.server
def test_6_verify_names_a_client_without_auth_delegator_and_up_restores_it(lab, project):
    assert runner.invoke(app, ["verify", "lab-a"]).exit_code == 0
    rbac = client.RbacAuthorizationV1Api(k8s.api_client(str(lab.kubeconfig), "lab-a"))
    rbac.delete_cluster_role_binding("vaultfleet-client-token-review")
    result = runner.invoke(app, ["verify", "lab-a", "--role", "deployer"])
    assert result.exit_code == 1, result.output
    assert "system:serviceaccount:ci:deployer lacks system:auth-delegator" in result.output, result.output
    assert runner.invoke(app, ["up", "lab-a"]).exit_code == 0
    assert runner.invoke(app, ["verify", "lab-a"]).exit_code == 0


@pytest.mark.server
def test_7_the_applier_cannot_store_a_reviewer_token_on_a_client_jwt_mount(lab, project):
    root = root_client(lab)
    before = root.read("auth/k8s-lab-a/config")["data"]
    # The config as the stack declares it (the API host and CA as Vault holds them).
    declared = dict(
        kubernetes_host=before["kubernetes_host"],
        kubernetes_ca_cert=before["kubernetes_ca_cert"],
        disable_iss_validation=True,
        disable_local_ca_jwt=True,
    )
    attempts = [
        {"token_reviewer_jwt": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"},
        {"disable_local_ca_jwt": False},  # Vault would review with its own (pod) token
    ]
    with vault_token(root, ["vaultfleet-apply-lab-a"], "5m") as token:
        applier = hvac.Client(url=lab.vault_addr, token=token)
        applier.write("auth/k8s-lab-a/config", **declared)  # positive control: as declared, allowed
        assert root.read("auth/k8s-lab-a/config")["data"] == before
        for extra in attempts:
            denied(lambda extra=extra: applier.write("auth/k8s-lab-a/config", **{**declared, **extra}))
    assert root.read("auth/k8s-lab-a/config")["data"] == before


def test_8_changing_a_clusters_mode_is_a_change_preview_shows(lab, project):
    path = project / "stacks/Pulumi.lab-b.yaml"
    original = path.read_text()
    edit_stack(project, "lab-b", lambda config: _client_jwt(config, api_audience(lab, "lab-b")))
    try:
        result = runner.invoke(app, ["preview", "lab-b", "--no-refresh", "--format", "json"])
        assert result.exit_code == 0, result.output
        (summary,) = json.loads(result.stdout)
        steps = {(s["op"], s["type"].rsplit(":", 1)[-1]) for s in summary["steps"]}
        # The reviewer identity goes, the clients' binding comes, the config stops holding a JWT.
        assert {("delete", "ServiceAccount"), ("delete", "Secret"), ("create", "ClusterRoleBinding")} <= steps, steps
        assert any(op in ("update", "replace") and kind == "AuthBackendConfig" for op, kind in steps), steps
    finally:
        path.write_text(original)


@pytest.mark.server
def test_9_jwt_mode_logs_in_every_role_by_claims_and_refuses_the_rest(lab, project):
    root = root_client(lab)
    assert root.sys.list_auth_methods()["data"]["k8s-lab-c/"]["type"] == "jwt"
    for namespace in ("team-x", "team-y"):
        root.secrets.kv.v2.create_or_update_secret(
            f"clusters/lab-c/namespaces/{namespace}/db", {"owner": namespace}, mount_point="kv"
        )
    root.secrets.kv.v2.create_or_update_secret("clusters/lab-c/db", {"owner": "lab-c"}, mount_point="kv")
    assert read(login(lab, "lab-c", "app", "app", "app", method="jwt"), "clusters/lab-c/db") == {"owner": "lab-c"}
    for mine, other in (("team-x", "team-y"), ("team-y", "team-x")):
        team = login(lab, "lab-c", "team", mine, "app", method="jwt")
        assert read(team, f"clusters/lab-c/namespaces/{mine}/db") == {"owner": mine}
        with pytest.raises(hvac.exceptions.Forbidden):
            read(team, f"clusters/lab-c/namespaces/{other}/db")
    before = root.read("auth/k8s-lab-c/role/app")["data"]
    for namespace, account, audience, reason in (
        ("app", "other", "vault", bound_claim("/kubernetes.io/serviceaccount/name")),
        ("other", "app", "vault", bound_claim("/kubernetes.io/namespace")),
        ("app", "app", "api", AUDIENCE),
    ):
        refused(
            lambda n=namespace, a=account, aud=audience: login(lab, "lab-c", "app", n, a, aud, method="jwt"), reason
        )
    assert root.read("auth/k8s-lab-c/role/app")["data"] == before


@pytest.mark.server
@pytest.mark.parametrize("cluster, other", list(itertools.permutations(["lab-a", "lab-b", "lab-c"], 2)))
def test_10_every_pair_of_the_three_modes_is_isolated(lab, project, cluster, other):
    assert_isolated(lab, cluster, other)


@pytest.mark.server
def test_11_jwt_mode_stores_no_token_and_makes_nothing_in_the_cluster(lab, lab_env, project):
    shown = pulumi_command().run(["stack", "export", "--show-secrets", "--stack", "lab-c"], str(project), lab_env)
    resources = json.loads(shown.stdout)["deployment"]["resources"]
    assert not [r["type"] for r in resources if r["type"].startswith("kubernetes:") and "providers" not in r["type"]]
    config = root_client(lab).read("auth/k8s-lab-c/config")["data"]
    issuer, keys = issuer_keys(k8s.api_client(str(lab.kubeconfig), "lab-c"))
    assert (config["bound_issuer"], sorted(k.strip() for k in config["jwt_validation_pubkeys"])) == (issuer, keys)
    assert "token_reviewer_jwt" not in config


@pytest.mark.server
def test_12_the_servers_agent_logs_in_and_renders_in_jwt_mode(lab, project, tmp_path):
    result = runner.invoke(app, ["consumers", "lab-c", "--kind", "agent", "--role", "app", "--format", "json"])
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout)
    (method,) = config["auto_auth"]["method"]
    assert (method["type"], method["mount_path"]) == ("jwt", "auth/k8s-lab-c")
    (template,) = [t for t in config["template"] if "kv/data/" in t["contents"]]  # the KV one (db-creds too)
    path = re.search(r'with secret "([^"]+)"', template["contents"]).group(1)
    root_client(lab).secrets.kv.v2.create_or_update_secret(
        path.removeprefix("kv/data/"), {"user": "app", "password": "jwt-pw"}, mount_point="kv"
    )
    api = k8s.api_client(str(lab.kubeconfig), "lab-c")
    token_file = tmp_path / "token"
    token_file.write_text(k8s.request_token(api, "app", "app", audience="vault"))
    token_file.chmod(0o600)
    method["config"]["path"] = str(token_file)
    template["destination"] = str(tmp_path / "rendered")
    code, output = run_agent(lab.vault_cli, config, tmp_path)
    assert code == 0, output
    assert (tmp_path / "rendered").read_text() == "password=jwt-pw\nuser=app\n"


def _jwt_role(**change) -> dict:
    body = {
        "role_type": "jwt",
        "user_claim": "sub",
        "bound_audiences": ["vault"],
        "bound_claims": {"/kubernetes.io/namespace": ["app"], "/kubernetes.io/serviceaccount/name": ["app"]},
        "bound_claims_type": "string",
        "claim_mappings": {
            "/kubernetes.io/namespace": "service_account_namespace",
            "/kubernetes.io/serviceaccount/name": "service_account_name",
            "/kubernetes.io/serviceaccount/uid": "service_account_uid",
        },
        "token_policies": ["k8s-lab-c-db-creds", "k8s-lab-c-kv-read"],
        "token_ttl": 3600,
    }
    return {**body, **change}


JWT_ATTACKS = {
    "attach root": dict(token_policies=["root"]),
    "attach the cluster's other policy": dict(token_policies=["k8s-lab-c-kv-namespace"]),
    "bind every namespace": dict(bound_claims={"/kubernetes.io/namespace": ["*"]}, bound_claims_type="glob"),
    "map the ServiceAccount name onto the namespace the templates read": dict(
        claim_mappings={"/kubernetes.io/serviceaccount/name": "service_account_namespace"}
    ),
    "accept another audience": dict(bound_audiences=["any"]),
    "make the tokens periodic": dict(token_period=86400),
    "issue batch tokens (not revocable one by one)": dict(token_type="batch"),
}


@pytest.mark.server
@pytest.mark.parametrize("attack", list(JWT_ATTACKS))
def test_14_the_jwt_mode_applier_writes_its_roles_exactly_as_declared(lab, project, attack):
    root = root_client(lab)
    before = root.read("auth/k8s-lab-c/role/app")["data"]
    with vault_token(root, ["vaultfleet-apply-lab-c"], "5m") as token:
        applier = hvac.Client(url=lab.vault_addr, token=token)
        applier.write("auth/k8s-lab-c/role/app", **_jwt_role())  # as declared: allowed
        denied(lambda: applier.write("auth/k8s-lab-c/role/app", **_jwt_role(**JWT_ATTACKS[attack])))
    assert root.read("auth/k8s-lab-c/role/app")["data"] == before


# The applier's own key pair: with its public key in lab-c's config it could sign a token for any role.
ATTACKER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ATTACKER_PEM = (
    ATTACKER_KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
    .strip()
)
MALLORY = "https://issuer.mallory.test"

# (issuer, the cluster's keys) -> the config the attacker writes at auth/k8s-lab-c/config
CONFIG_ATTACKS = {
    "its own key in place of the cluster's": lambda issuer, keys: dict(
        jwt_validation_pubkeys=[ATTACKER_PEM], bound_issuer=issuer
    ),
    "its own key beside the cluster's": lambda issuer, keys: dict(
        jwt_validation_pubkeys=sorted([*keys, ATTACKER_PEM]), bound_issuer=issuer
    ),
    "another issuer": lambda issuer, keys: dict(jwt_validation_pubkeys=keys, bound_issuer=MALLORY),
    "a JWKS URL of its own": lambda issuer, keys: dict(jwks_url=f"{MALLORY}/keys", bound_issuer=issuer),
    "an OIDC discovery URL of its own": lambda issuer, keys: dict(oidc_discovery_url=MALLORY, bound_issuer=issuer),
}


def lab_c_issuer(lab) -> tuple[str, list[str]]:
    """lab-c's issuer and current keys (sorted PEMs), as the shared stack reads and pins them."""
    return issuer_keys(k8s.api_client(str(lab.kubeconfig), "lab-c"))


@pytest.mark.server
@pytest.mark.parametrize("attack", list(CONFIG_ATTACKS))
def test_14b_the_jwt_mode_applier_writes_exactly_the_clusters_issuer_and_keys(lab, project, attack):
    root = root_client(lab)
    before = root.read("auth/k8s-lab-c/config")["data"]
    issuer, keys = lab_c_issuer(lab)
    with vault_token(root, ["vaultfleet-apply-lab-c"], "5m") as token:
        applier = hvac.Client(url=lab.vault_addr, token=token)
        # Positive control: the cluster's own issuer and keys, as its JWKS gives them: allowed.
        applier.write("auth/k8s-lab-c/config", jwt_validation_pubkeys=keys, bound_issuer=issuer)
        denied(lambda: applier.write("auth/k8s-lab-c/config", **CONFIG_ATTACKS[attack](issuer, keys)))
    assert root.read("auth/k8s-lab-c/config")["data"] == before


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged_token(issuer: str, namespace: str = "app", account: str = "app") -> str:
    """A ServiceAccount token of namespace/account as lab-c's API server would issue it for
    audience `vault`, signed with the attacker's key (RS256, as the API server signs)."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": ["vault"],
        "sub": f"system:serviceaccount:{namespace}:{account}",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "kubernetes.io": {
            "namespace": namespace,
            "serviceaccount": {"name": account, "uid": "00000000-0000-4000-8000-000000000001"},
        },
    }
    header = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    signing_input = f"{header}.{_b64(json.dumps(claims).encode())}"
    signature = ATTACKER_KEY.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


@pytest.mark.server
def test_14c_a_login_forged_with_a_key_of_the_appliers_own_does_not_get_in(lab, project):
    root = root_client(lab)
    root.secrets.kv.v2.create_or_update_secret("clusters/lab-c/db", {"owner": "lab-c"}, mount_point="kv")
    before = root.read("auth/k8s-lab-c/config")["data"]
    issuer, keys = lab_c_issuer(lab)
    forged = forged_token(issuer)
    # Positive control: the forged token is role app's in everything but its signer. With its key
    # trusted (the admin adds it for a moment) it logs in and reads lab-c's KV: the attack's aim.
    try:
        root.write("auth/k8s-lab-c/config", jwt_validation_pubkeys=sorted([*keys, ATTACKER_PEM]), bound_issuer=issuer)
        assert read(mode_login(lab, "lab-c", forged), "clusters/lab-c/db") == {"owner": "lab-c"}
    finally:
        root.write(
            "auth/k8s-lab-c/config",
            jwt_validation_pubkeys=before["jwt_validation_pubkeys"],
            bound_issuer=before["bound_issuer"],
        )
    assert root.read("auth/k8s-lab-c/config")["data"] == before
    # The applier cannot add it: the shared stack pinned the cluster's keys...
    with vault_token(root, ["vaultfleet-apply-lab-c"], "5m") as token:
        applier = hvac.Client(url=lab.vault_addr, token=token)
        applier.write("auth/k8s-lab-c/config", jwt_validation_pubkeys=keys, bound_issuer=issuer)  # allowed
        denied(
            lambda: applier.write(
                "auth/k8s-lab-c/config", jwt_validation_pubkeys=sorted([*keys, ATTACKER_PEM]), bound_issuer=issuer
            )
        )
    # ...so the forged login is refused for its signature, and the config is the cluster's.
    refused(lambda: mode_login(lab, "lab-c", forged), SIGNATURE)
    assert root.read("auth/k8s-lab-c/config")["data"] == before


@pytest.mark.server
def test_15_the_operators_jwt_objects_are_accepted_by_the_real_crds_and_log_in(lab, project):
    from tests.lab import consumer_checks
    from tests.lab.test_consumers import CRDS

    api = k8s.api_client(str(lab.kubeconfig), "lab-c")
    names = consumer_checks.install(api, CRDS)  # once for both kinds: a CRD takes a while to go
    objects = client.CustomObjectsApi(api)
    logins = []
    try:
        for kind in ("eso", "vso"):
            # The team role reads KV only: no database generator, whose CRD this test does not install.
            args = ["--kind", kind, "--role", "team", "--namespace", "team-x", "--format", "json"]
            result = runner.invoke(app, ["consumers", "lab-c", *args])
            assert result.exit_code == 0, result.output
            documents = json.loads(result.stdout)
            try:
                stored = {d["kind"]: consumer_checks.create_strict(api, d) for d in documents}
            except client.ApiException as exc:
                raise AssertionError(f"{kind}: {exc.status} {exc.reason}: {exc.body}") from None
            if kind == "eso":
                jwt = stored["SecretStore"]["spec"]["provider"]["vault"]["auth"]["jwt"]
                account = jwt["kubernetesServiceAccountToken"]["serviceAccountRef"]
                logins.append((jwt["path"], jwt["role"], account["name"], account["audiences"]))
            else:
                auth = stored["VaultAuth"]["spec"]
                assert auth["method"] == "jwt"
                logins.append(
                    (auth["mount"], auth["jwt"]["role"], auth["jwt"]["serviceAccount"], auth["jwt"]["audiences"])
                )
            for d in documents:  # gone before their CRDs, which then go at once
                group, version = d["apiVersion"].split("/")
                objects.delete_namespaced_custom_object(
                    group, version, d["metadata"]["namespace"], d["kind"].lower() + "s", d["metadata"]["name"]
                )
    finally:
        consumer_checks.remove(api, names)
    # What each operator does with its objects: a token of that ServiceAccount for those audiences,
    # a jwt login at that mount.
    for path, role, name, audiences in logins:
        token = k8s.request_token(api, "team-x", name, audience=audiences[0])
        login = hvac.Client(url=lab.vault_addr).auth.jwt.jwt_login(role=role, jwt=token, path=path)
        assert "k8s-lab-c-kv-namespace" in login["auth"]["policies"]


@pytest.mark.server
def test_16_reviewer_token_health_and_a_rotation_without_a_gap(lab, project):
    result = runner.invoke(app, ["verify", "lab-b"])
    assert result.exit_code == 0, result.output
    assert "reviewer token (kube-system/vault-auth-token): Vault can review with it; no expiry" in result.output
    # A new Secret name rotates the token: made first, written into Vault, then the old one deleted.
    edit_stack(
        project, "lab-b", lambda config: config["vaultfleet:cluster"].update(reviewerTokenSecret="vault-auth-token-2")
    )
    up = runner.invoke(app, ["up", "lab-b", "--format", "json"])
    assert up.exit_code == 0, up.output
    (summary,) = json.loads(up.stdout)
    ops = [(s["op"], s["type"].rsplit(":", 1)[-1]) for s in summary["steps"]]
    # Pulumi's replacement order: create the new Secret, update the config with its token, delete the old.
    assert ops.index(("create-replacement", "Secret")) < ops.index(("update", "AuthBackendConfig"))
    assert ops.index(("update", "AuthBackendConfig")) < ops.index(("delete-replaced", "Secret")), ops
    core = client.CoreV1Api(k8s.api_client(str(lab.kubeconfig), "lab-b"))
    assert [
        s.metadata.name
        for s in core.list_namespaced_secret("kube-system").items
        if s.metadata.name.startswith("vault-auth")
    ] == ["vault-auth-token-2"]
    login(lab, "lab-b", "app", "app", "app", "vault").auth.token.revoke_self()
    checked = runner.invoke(app, ["verify", "lab-b"])
    assert checked.exit_code == 0 and "kube-system/vault-auth-token-2" in checked.output, checked.output
    # A reviewer that may no longer review is named as such.
    rbac = client.RbacAuthorizationV1Api(k8s.api_client(str(lab.kubeconfig), "lab-b"))
    rbac.delete_cluster_role_binding("vault-auth-kube-system-auth-delegator")
    broken = runner.invoke(app, ["verify", "lab-b"])
    assert broken.exit_code == 1, broken.output
    assert "reviewer token (kube-system/vault-auth-token-2): the reviewer may not call TokenReview" in broken.output


@pytest.mark.server
@pytest.mark.parametrize("mode", ["client-jwt", "jwt"])
def test_16b_db_creds_work_in_the_new_modes(lab, project, mode):
    if mode == "client-jwt":
        vault = login(lab, "lab-a", "deployer", "ci", "deployer", None)
    else:
        vault = login(lab, "lab-c", "app", "app", "app", method="jwt")
    creds = vault.read(f"database/creds/{DB_ROLE}")
    try:
        kwargs = lab.postgres.connect_kwargs(user=creds["data"]["username"], password=creds["data"]["password"])
        with psycopg.connect(**kwargs) as connection:
            assert connection.execute("SELECT count(*) FROM inventory").fetchone() == (len(lab_db.INVENTORY),)
    finally:
        vault.sys.revoke_lease(creds["lease_id"])


@pytest.mark.server
def test_17_a_rotated_signing_key_is_named_by_verify_shown_by_preview_and_written_after_the_shared_stack(
    lab, lab_env, project, monkeypatch
):
    from vaultfleet.lab import kubernetes as lab_kubernetes
    from vaultfleet.toolchain import find_tool

    # Last in the module: the restarted API server may refuse namespaced writes for a moment.
    # The lab record as it is now (another module may have restarted a server since the session began).
    state = LabState.load()
    cluster = next(c for c in state.clusters if c.name == "lab-c")
    lab_kubernetes.rotate_signing_key(state, cluster, find_tool("kube-apiserver"))
    # New tokens are signed with the new key, which Vault does not know yet.
    result = runner.invoke(app, ["verify", "lab-c", "--role", "app"])
    assert result.exit_code == 1 and "signing key mismatch" in result.output, result.output
    preview = runner.invoke(app, ["preview", "lab-c", "--expect-no-changes", "--format", "json"])
    assert preview.exit_code == 3, preview.output
    (summary,) = json.loads(preview.stdout)
    assert [s["type"] for s in summary["steps"]] == ["vault:generic/endpoint:Endpoint"], summary

    def vault_keys() -> list[str]:
        return sorted(
            k.strip() for k in root_client(lab).read("auth/k8s-lab-c/config")["data"]["jwt_validation_pubkeys"]
        )

    before = vault_keys()
    with vault_token(root_client(lab), ["vaultfleet-apply-lab-c"], "15m") as token:
        # lab-c's applier cannot write the new key: the shared stack pinned the keys it read before.
        monkeypatch.setenv("VAULT_TOKEN", token)
        early = runner.invoke(app, ["up", "lab-c"])
        assert early.exit_code == 1, early.output
        assert re.search(r"auth/k8s-lab-c/config[\s\S]*permission denied", early.output), early.output
        assert vault_keys() == before
        # The privileged stage (admin) reads the cluster's JWKS again and pins the new keys...
        monkeypatch.setenv("VAULT_TOKEN", lab_env["VAULT_TOKEN"])
        pinned = runner.invoke(app, ["up", "vault"])
        assert pinned.exit_code == 0, pinned.output
        # ...then the applier writes them.
        monkeypatch.setenv("VAULT_TOKEN", token)
        up = runner.invoke(app, ["up", "lab-c"])
        assert up.exit_code == 0, up.output
    monkeypatch.setenv("VAULT_TOKEN", lab_env["VAULT_TOKEN"])
    # The cluster's keys now: the new one, beside the previous one that still verifies its tokens.
    _, keys = issuer_keys(k8s.api_client(str(lab.kubeconfig), "lab-c"))
    assert vault_keys() == keys != before and len(keys) == 2
    assert runner.invoke(app, ["verify", "lab-c"]).exit_code == 0
