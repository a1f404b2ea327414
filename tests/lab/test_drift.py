"""Out-of-band changes are reported by `preview --refresh --expect-no-changes` and repaired by `up`."""

from __future__ import annotations

import hvac
import pytest
from kubernetes import client
from typer.testing import CliRunner

from tests.lab import k8s
from tests.lab.conftest import copy_project, use_lab_for_cli
from vaultfleet.cli import app
from vaultfleet.fleet.engine import select_stack

pytestmark = pytest.mark.lab
runner = CliRunner()
BINDING = "vault-auth-kube-system-auth-delegator"


@pytest.fixture(scope="module")
def project(lab, lab_env, tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("drift"))
    stack = select_stack("lab-a", project, lab_env)
    assert stack.up(color="never").summary.result == "succeeded"
    yield project
    stack.destroy(color="never")
    stack.workspace.remove_stack("lab-a")


@pytest.fixture(autouse=True)
def environment(monkeypatch, project, lab_env):
    use_lab_for_cli(monkeypatch, project, lab_env)


def _vault(lab):
    return hvac.Client(url=lab.vault_addr, token=lab.vault_token())


def _role(lab):
    return _vault(lab).auth.kubernetes.read_role("app", mount_point="k8s-lab-a")


def _rbac(lab):
    return client.RbacAuthorizationV1Api(k8s.api_client(str(lab.kubeconfig), "lab-a"))


DRIFTS = {
    "role policies": (
        lambda lab: _vault(lab).auth.kubernetes.create_role(
            "app",
            bound_service_account_names=["app"],
            bound_service_account_namespaces=["app"],
            policies=["root"],
            audience="vault",
            ttl=3600,
            max_ttl=14400,
            mount_point="k8s-lab-a",
        ),
        lambda lab: _role(lab)["token_policies"] == ["k8s-lab-a-kv-read"],
    ),
    "role bound namespaces": (
        lambda lab: _vault(lab).auth.kubernetes.create_role(
            "app",
            bound_service_account_names=["app"],
            bound_service_account_namespaces=["*"],
            policies=["k8s-lab-a-kv-read"],
            audience="vault",
            ttl=3600,
            max_ttl=14400,
            mount_point="k8s-lab-a",
        ),
        lambda lab: _role(lab)["bound_service_account_namespaces"] == ["app"],
    ),
    "mount config host": (
        lambda lab: _vault(lab).write(
            "auth/k8s-lab-a/config",
            kubernetes_host="https://127.0.0.1:1",
            kubernetes_ca_cert=lab.pki("lab-a").ca_cert.read_text(),
        ),
        lambda lab: _vault(lab).read("auth/k8s-lab-a/config")["data"]["kubernetes_host"] == lab.clusters[0].server,
    ),
    "policy body": (
        lambda lab: _vault(lab).sys.create_or_update_policy(
            "k8s-lab-a-kv-read", 'path "kv/data/*" { capabilities = ["read"] }'
        ),
        lambda lab: "clusters/lab-a" in _vault(lab).sys.read_policy("k8s-lab-a-kv-read")["data"]["rules"],
    ),
    "reviewer binding deleted": (
        lambda lab: _rbac(lab).delete_cluster_role_binding(BINDING),
        lambda lab: _rbac(lab).read_cluster_role_binding(BINDING).role_ref.name == "system:auth-delegator",
    ),
    "reviewer service account deleted": (
        lambda lab: client.CoreV1Api(k8s.api_client(str(lab.kubeconfig), "lab-a")).delete_namespaced_service_account(
            "vault-auth", "kube-system"
        ),
        lambda lab: (
            client.CoreV1Api(k8s.api_client(str(lab.kubeconfig), "lab-a")).read_namespaced_service_account(
                "vault-auth", "kube-system"
            )
            is not None
        ),
    ),
}


@pytest.mark.parametrize("drift", list(DRIFTS))
def test_drift_is_reported_and_repaired(lab, drift):
    change, repaired = DRIFTS[drift]
    assert runner.invoke(app, ["preview", "lab-a", "--refresh", "--expect-no-changes"]).exit_code == 0
    change(lab)
    reported = runner.invoke(app, ["preview", "lab-a", "--refresh", "--expect-no-changes"])
    assert reported.exit_code == 3, reported.output
    result = runner.invoke(app, ["up", "lab-a", "--refresh"])
    assert result.exit_code == 0, result.output
    assert repaired(lab)
    after = runner.invoke(app, ["preview", "lab-a", "--refresh", "--expect-no-changes"])
    assert after.exit_code == 0, after.output
