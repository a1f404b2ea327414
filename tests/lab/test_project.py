"""The Pulumi project on the lab: shared stack, then lab-a and lab-b against one Vault.

The tests share one fleet (a copy of the project in a temp dir): test_1 brings it up and checks
it, the others get it from the `fleet_up` fixture, which only looks when test_1 ran.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import hvac
import pytest
import yaml
from kubernetes import client

from tests.harness import REPO, Fleet, copy_project, destroy_stacks, plain_stack_export, up_stacks
from tests.lab import k8s

# `server` on every test but test_7: they write and read Vault objects through the provider, log in,
# search the state for what the provider read back, or run the server's own CLI. test_7's invalid
# stack files are refused by the program before anything reaches Vault (server-independent).
pytestmark = pytest.mark.lab

CLUSTERS = ("lab-a", "lab-b")


@pytest.fixture(scope="module")
def fleet(lab, lab_env, tmp_path_factory):
    fleet = Fleet(lab, lab_env, copy_project(tmp_path_factory.mktemp("fleet")), ("vault", *CLUSTERS))
    yield fleet
    destroy_stacks(fleet.project, lab_env, [*CLUSTERS, "vault"])


@pytest.fixture()
def fleet_up(fleet):
    """The shared stack and both clusters up: what test_1 does and checks. After it, this only
    looks (no engine run); a test run without it gets the fleet here."""
    mounts = fleet.vault.sys.list_auth_methods()["data"]
    if not all(f"k8s-{cluster}/" in mounts for cluster in CLUSTERS):
        for name in ("vault", *CLUSTERS):
            fleet.up(name)


@pytest.mark.server
def test_1_shared_then_clusters_up(fleet):
    for name in ("vault", *CLUSTERS):
        fleet.up(name)
    mounts = fleet.vault.sys.list_auth_methods()["data"]
    policies = fleet.vault.sys.list_policies()["data"]["policies"]
    assert "kv/" in fleet.vault.sys.list_mounted_secrets_engines()["data"]
    assert {"vaultfleet-apply-lab-a", "vaultfleet-apply-lab-b", "vaultfleet-previewer"} <= set(policies)
    for cluster in CLUSTERS:
        assert mounts[f"k8s-{cluster}/"]["type"] == "kubernetes"
        config = fleet.vault.auth.kubernetes.read_config(mount_point=f"k8s-{cluster}")
        server = next(c.server for c in fleet.lab.clusters if c.name == cluster)
        assert config["kubernetes_host"] == server
        assert config["kubernetes_ca_cert"].strip() == fleet.lab.pki(cluster).ca_cert.read_text().strip()
        assert {f"k8s-{cluster}-kv-read", f"k8s-{cluster}-kv-write"} <= set(policies)
        role = fleet.vault.auth.kubernetes.read_role("app", mount_point=f"k8s-{cluster}")
        assert role["bound_service_account_names"] == ["app"]
        assert role["bound_service_account_namespaces"] == ["app"]
        assert role["token_policies"] == [f"k8s-{cluster}-kv-read"]
        assert (role["token_ttl"], role["token_max_ttl"], role["audience"]) == (3600, 14400, "vault")
        rbac = client.RbacAuthorizationV1Api(fleet.kube_of(cluster))
        binding = rbac.read_cluster_role_binding("vault-auth-kube-system-auth-delegator")
        assert binding.role_ref.name == "system:auth-delegator"


@pytest.mark.server
@pytest.mark.usefixtures("fleet_up")
def test_2_real_login_reads_own_path_only(fleet):
    for cluster in CLUSTERS:
        fleet.vault.secrets.kv.v2.create_or_update_secret(
            f"clusters/{cluster}/db", secret={"password": f"{cluster}-pw"}, mount_point="kv"
        )
    app = fleet.login("app", "app", "app")
    secret = app.secrets.kv.v2.read_secret_version("clusters/lab-a/db", mount_point="kv", raise_on_deleted_version=True)
    assert secret["data"]["data"]["password"] == "lab-a-pw"
    with pytest.raises(hvac.exceptions.Forbidden):
        app.secrets.kv.v2.read_secret_version("clusters/lab-b/db", mount_point="kv", raise_on_deleted_version=True)
    # kv-read only: no writes to its own path either.
    with pytest.raises(hvac.exceptions.Forbidden):
        app.secrets.kv.v2.create_or_update_secret("clusters/lab-a/db", secret={"x": "y"}, mount_point="kv")

    for namespace, account in [("app", "other"), ("other", "app")]:
        with pytest.raises(hvac.exceptions.Forbidden):
            fleet.login("app", namespace, account)
    # A lab-a token is no good at lab-b's mount (other signing key).
    k8s.ensure_service_account(fleet.kube_of("lab-a"), "app", "app")
    jwt = k8s.request_token(fleet.kube_of("lab-a"), "app", "app", audience="vault")
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac.Client(url=fleet.lab.vault_addr).auth.kubernetes.login("app", jwt, mount_point="k8s-lab-b")


@pytest.mark.server
@pytest.mark.usefixtures("fleet_up")
def test_3_second_up_and_preview_change_nothing(fleet):
    for name in ("vault", *CLUSTERS):
        result = fleet.up(name)
        assert set(result.summary.resource_changes) == {"same"}, (name, result.summary.resource_changes)
        preview = fleet.stacks[name].preview(color="never")
        assert set(preview.change_summary) == {"same"}, (name, preview.change_summary)


@pytest.mark.server
@pytest.mark.usefixtures("fleet_up")
def test_4_removing_role_and_policy_removes_them_and_adding_back_restores(fleet):
    original = yaml.safe_load(fleet.stack_file("lab-a").read_text())["config"]

    def drop_deployer_and_kv_write(config):
        config["vaultfleet:roles"] = [r for r in config["vaultfleet:roles"] if r["name"] != "deployer"]
        config["vaultfleet:policies"] = ["kv-read"]

    fleet.edit("lab-a", drop_deployer_and_kv_write)
    fleet.up("vault")  # the shared stack writes (and removes) the cluster's policies
    fleet.up("lab-a")
    assert fleet.vault.auth.kubernetes.list_roles(mount_point="k8s-lab-a")["keys"] == ["app"]
    assert "k8s-lab-a-kv-write" not in fleet.vault.sys.list_policies()["data"]["policies"]
    assert "k8s-lab-b-kv-write" in fleet.vault.sys.list_policies()["data"]["policies"]

    fleet.edit("lab-a", lambda config: config.update(original) or config.pop("vaultfleet:policies", None))
    fleet.up("vault")
    fleet.up("lab-a")
    assert sorted(fleet.vault.auth.kubernetes.list_roles(mount_point="k8s-lab-a")["keys"]) == ["app", "deployer"]
    assert "k8s-lab-a-kv-write" in fleet.vault.sys.list_policies()["data"]["policies"]


@pytest.mark.server
@pytest.mark.usefixtures("fleet_up")
def test_5_secrets_stay_out_of_state(fleet):
    reviewer_jwts = [
        k8s.wait_for_secret_token(fleet.kube_of(cluster), "kube-system", "vault-auth-token") for cluster in CLUSTERS
    ]
    secrets = [*reviewer_jwts, fleet.lab.vault_token(), fleet.lab.passphrase_file.read_text().strip()]
    backend = Path(fleet.lab.backend_url.removeprefix("file://"))
    texts = {str(p): p.read_text(errors="replace") for p in backend.rglob("*") if p.is_file()}
    exports = {name: plain_stack_export(fleet.project, name, fleet.env) for name in ("vault", *CLUSTERS)}
    texts.update({f"pulumi stack export -s {n}": t for n, t in exports.items()})
    texts.update({str(p): p.read_text() for p in (fleet.project / "stacks").glob("*.yaml")})
    assert any("lab-a.json" in where for where in texts)
    for i, secret in enumerate(secrets):
        assert len(secret) > 20
        leaks = [where for where, text in texts.items() if secret in text]
        assert not leaks, f"secret #{i} in plaintext in {leaks}"
    # The reviewer JWT is in state, encrypted: the config resource carries a ciphertext.
    deployment = json.loads(exports["lab-a"])["deployment"]
    config = next(
        r for r in deployment["resources"] if r["type"] == "vault:kubernetes/authBackendConfig:AuthBackendConfig"
    )
    assert (
        config["inputs"]["tokenReviewerJwt"]["4dabf18193072939515e22adb298388d"] == "1b47061264138c4ac30d75fd1eb44270"
    )
    assert "ciphertext" in config["inputs"]["tokenReviewerJwt"]


@pytest.mark.server
@pytest.mark.usefixtures("fleet_up")
def test_6_plain_pulumi_cli_in_a_lab_env_shell(fleet):
    script = f"""
set -euo pipefail
eval "$({REPO}/.venv/bin/vaultfleet lab env)"
cd {fleet.project}
pulumi preview -s lab-b --non-interactive --expect-no-changes
pulumi up -s lab-b --yes --non-interactive
kubectl --context lab-b get serviceaccount vault-auth -n kube-system -o name
"$VAULT_CLI" version
"$VAULT_CLI" read -field=kubernetes_host auth/k8s-lab-b/config
"""
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "unchanged" in out.stdout
    assert "serviceaccount/vault-auth" in out.stdout
    assert next(c.server for c in fleet.lab.clusters if c.name == "lab-b") in out.stdout
    # $VAULT_CLI is the lab's own server binary (`bao` or `vault`), not whichever is first on PATH.
    assert f"{fleet.lab.server.banner} v{fleet.lab.vault_version} " in out.stdout


def test_7_invalid_stack_file_stops_preview_naming_file_and_field(fleet):
    original = fleet.stack_file("lab-b").read_text()
    cases = [
        (lambda c: c["vaultfleet:roles"][0].update(audiences="vault"), "vaultfleet:roles[0].audiences: unknown field"),
        (lambda c: c["vaultfleet:roles"][0].update(ttl="soon"), "vaultfleet:roles[0].ttl"),
        (lambda c: c["vaultfleet:cluster"].pop("kubeContext"), "vaultfleet:cluster.kubeContext: required"),
    ]
    try:
        for change, expected in cases:
            fleet.stack_file("lab-b").write_text(original)
            fleet.edit("lab-b", change)
            from pulumi import automation as auto

            with pytest.raises(auto.CommandError) as info:
                fleet.stacks["lab-b"].preview(color="never")
            message = str(info.value)
            assert "stacks/Pulumi.lab-b.yaml" in message and expected in message, message
            assert "invalid configuration, nothing was changed" in message
    finally:
        fleet.stack_file("lab-b").write_text(original)


@pytest.mark.server
@pytest.mark.usefixtures("fleet_up")
def test_8_offboarding_one_cluster_leaves_the_other_working(fleet):
    # Offboarding (docs/dangerous-steps.md): destroy the cluster's stack, remove its stack file, and
    # the shared stack removes the cluster's mount, policies and applier policy: a dangerous step
    # (the mount's tokens are revoked), so `vaultfleet up vault --allow-dangerous vault`.
    result = fleet.stacks["lab-a"].destroy(color="never")
    assert result.summary.result == "succeeded"
    fleet.stack_file("lab-a").unlink()
    up_stacks(fleet.project, fleet.env, ["vault"], allow_dangerous=["vault"])
    assert "k8s-lab-a/" not in fleet.vault.sys.list_auth_methods()["data"]
    assert "vaultfleet-apply-lab-a" not in fleet.vault.sys.list_policies()["data"]["policies"]
    policies = fleet.vault.sys.list_policies()["data"]["policies"]
    assert not [p for p in policies if p.startswith("k8s-lab-a-")]
    core = client.CoreV1Api(fleet.kube_of("lab-a"))
    with pytest.raises(client.ApiException) as info:
        core.read_namespaced_service_account("vault-auth", "kube-system")
    assert info.value.status == 404
    with pytest.raises(client.ApiException):
        client.RbacAuthorizationV1Api(fleet.kube_of("lab-a")).read_cluster_role_binding(
            "vault-auth-kube-system-auth-delegator"
        )

    fleet.vault.secrets.kv.v2.create_or_update_secret(
        "clusters/lab-b/db", secret={"password": "lab-b-pw"}, mount_point="kv"
    )
    app = fleet.login("app", "app", "app", cluster="lab-b")
    assert app.secrets.kv.v2.read_secret_version("clusters/lab-b/db", mount_point="kv", raise_on_deleted_version=True)
