"""Clusters without a long-lived reviewer token (issue 15): lab-a in `client-jwt` mode beside lab-b
in today's `reviewer-token` mode, on one Vault. Vault reviews each lab-a login with the login's own
token; no reviewer ServiceAccount, token Secret or stored JWT exists for lab-a anywhere.

lab-a's stack runs as its applier (the policy pins the mode: no reviewer JWT can be stored), and
lab-a's roles cover an audience-bound role, one without, and a namespace-templated one.
"""

from __future__ import annotations

import json
import re

import hvac
import pytest
from kubernetes import client
from typer.testing import CliRunner

from tests.conftest import edit_stack
from tests.lab import k8s
from tests.lab.agent import run_agent
from tests.lab.conftest import (
    copy_project,
    destroy_stacks,
    root_client,
    use_lab_for_cli,
    vault_token,
)
from vaultfleet.cli import app
from vaultfleet.fleet.engine import pulumi_command

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab_cli")]
runner = CliRunner()
BOUND = {"app": ("app", "app"), "deployer": ("ci", "deployer"), "team": ("team-x", "app")}


def api_audience(lab, cluster: str) -> str:
    """The API server's own audience: its ServiceAccount issuer (kube-apiserver's default)."""
    api = k8s.api_client(str(lab.kubeconfig), cluster)
    discovery = client.WellKnownApi(api).get_service_account_issuer_open_id_configuration(_preload_content=False)
    return json.loads(discovery.data)["issuer"]


def _client_jwt(config: dict, audience: str) -> None:
    config["vaultfleet:cluster"]["authMode"] = "client-jwt"
    config["vaultfleet:policies"] = ["kv-read", "kv-write", "kv-namespace"]
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
            "policies": ["kv-read", "kv-write"],
        },
        {"name": "team", "serviceAccounts": ["app"], "namespaces": ["team-x", "team-y"], "policies": ["kv-namespace"]},
    ]


@pytest.fixture(scope="module")
def project(lab, lab_env, tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("modes"))
    audience = api_audience(lab, "lab-a")
    edit_stack(project, "lab-a", lambda config: _client_jwt(config, audience))
    root = root_client(lab)
    with pytest.MonkeyPatch.context() as mp:
        use_lab_for_cli(mp, project, lab_env)
        assert runner.invoke(app, ["up", "vault", "lab-b"]).exit_code == 0  # admin: shared stack, lab-b
        with vault_token(root, ["vaultfleet-apply-lab-a"], "30m") as token:
            mp.setenv("VAULT_TOKEN", token)
            result = runner.invoke(app, ["up", "lab-a"])  # lab-a's applier
            assert result.exit_code == 0, result.output
    yield project
    destroy_stacks(project, lab_env, ["lab-a", "lab-b", "vault"])


def login(lab, cluster: str, role: str, namespace: str, account: str, audience: str | None) -> hvac.Client:
    api = k8s.api_client(str(lab.kubeconfig), cluster)
    k8s.ensure_service_account(api, namespace, account)
    vault = hvac.Client(url=lab.vault_addr)
    vault.auth.kubernetes.login(
        role, k8s.request_token(api, namespace, account, audience=audience), mount_point=f"k8s-{cluster}"
    )
    return vault


def read(vault: hvac.Client, path: str) -> dict:
    return vault.secrets.kv.v2.read_secret_version(path, mount_point="kv", raise_on_deleted_version=True)["data"][
        "data"
    ]


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


REFUSED = {
    "a ServiceAccount the role does not bind": ("app", "app", "other", "audience"),
    "a namespace the role does not bind": ("app", "other", "app", "audience"),
    # Vault presents the token to the API server, which takes only its own audience.
    "a token only for the role's audience, not the API server's": ("deployer", "ci", "deployer", "vault"),
}


@pytest.mark.server
@pytest.mark.parametrize("case", list(REFUSED))
def test_2_a_login_outside_the_roles_bindings_is_refused(lab, project, case):
    role, namespace, account, audience = REFUSED[case]
    with pytest.raises(hvac.exceptions.VaultError):
        login(
            lab, "lab-a", role, namespace, account, api_audience(lab, "lab-a") if audience == "audience" else audience
        )


@pytest.mark.server
def test_3_the_clusters_of_both_modes_are_isolated_from_each_other(lab, project):
    lab_b = login(lab, "lab-b", "app", "app", "app", "vault")  # reviewer-token mode, beside
    lab_b.auth.token.revoke_self()
    tokens = {
        "lab-a": k8s.request_token(k8s.api_client(str(lab.kubeconfig), "lab-a"), "app", "app", audience=None),
        "lab-b": k8s.request_token(k8s.api_client(str(lab.kubeconfig), "lab-b"), "app", "app", audience="vault"),
    }
    for cluster, other in (("lab-a", "lab-b"), ("lab-b", "lab-a")):
        with pytest.raises(hvac.exceptions.VaultError):
            hvac.Client(url=lab.vault_addr).auth.kubernetes.login("app", tokens[cluster], mount_point=f"k8s-{other}")


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
    (template,) = config["template"]
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
    server = next(c.server for c in lab.clusters if c.name == "lab-a")
    attempts = [
        {"token_reviewer_jwt": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"},
        {"disable_local_ca_jwt": False},
    ]
    with vault_token(root, ["vaultfleet-apply-lab-a"], "5m") as token:
        applier = hvac.Client(url=lab.vault_addr, token=token)
        for extra in attempts:
            with pytest.raises(hvac.exceptions.Forbidden):
                applier.write(
                    "auth/k8s-lab-a/config",
                    kubernetes_host=server,
                    kubernetes_ca_cert=lab.pki("lab-a").ca_cert.read_text(),
                    disable_iss_validation=True,
                    **extra,
                )
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
