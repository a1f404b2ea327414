"""Out-of-band changes are reported by the default `preview` (marked as drift) and put back by the
default `vaultfleet up` and by a plain `pulumi up`, for every kind of drift the suite knows, several
at once (each reported on its own resource)."""

from __future__ import annotations

import json
import subprocess

import pytest
from kubernetes import client
from typer.testing import CliRunner

from tests.harness import copy_project, destroy_stacks, root_client, up_stacks
from tests.lab import k8s
from vaultfleet.cli import app

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab_cli")]
runner = CliRunner()
BINDING = "vault-auth-kube-system-auth-delegator"


@pytest.fixture(scope="module")
def project(lab, lab_env, tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("drift"))
    up_stacks(project, lab_env, ["vault", "lab-a"])  # the shared stack makes lab-a's mount and policies
    yield project
    destroy_stacks(project, lab_env, ["lab-a", "vault"])


def _role(lab):
    return root_client(lab).auth.kubernetes.read_role("app", mount_point="k8s-lab-a")


def _rbac(lab):
    return client.RbacAuthorizationV1Api(k8s.api_client(str(lab.kubeconfig), "lab-a"))


DRIFTS = {
    "role policies": (
        lambda lab: root_client(lab).auth.kubernetes.create_role(
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
        lambda lab: root_client(lab).auth.kubernetes.create_role(
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
        lambda lab: root_client(lab).write(
            "auth/k8s-lab-a/config",
            kubernetes_host="https://127.0.0.1:1",
            kubernetes_ca_cert=lab.pki("lab-a").ca_cert.read_text(),
        ),
        lambda lab: root_client(lab).read("auth/k8s-lab-a/config")["data"]["kubernetes_host"] == lab.clusters[0].server,
    ),
    "policy body": (
        lambda lab: root_client(lab).sys.create_or_update_policy(
            "k8s-lab-a-kv-read", 'path "kv/data/*" { capabilities = ["read"] }'
        ),
        lambda lab: "clusters/lab-a" in root_client(lab).sys.read_policy("k8s-lab-a-kv-read")["data"]["rules"],
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


# Drifts whose repair is proven only by a real login, not by the object's being back: a recreated
# reviewer ServiceAccount has a new token, which Vault must now hold (the deleted one's is refused);
# the reviewer's binding and the API host are what Vault reviews each login with.
PROVEN_BY_LOGIN = {"reviewer service account deleted", "reviewer binding deleted", "mount config host"}


def _logins_work(drifts: list[str]) -> None:
    """`vaultfleet verify lab-a` after the repair of any of PROVEN_BY_LOGIN: a real login through
    every role of lab-a (Vault reviews each with the token it holds) and the token Secret's check."""
    if PROVEN_BY_LOGIN.isdisjoint(drifts):
        return
    verified = runner.invoke(app, ["verify", "lab-a"])
    assert verified.exit_code == 0, verified.output


# The stack that owns (and so repairs) what each drift changed, and the resource its refresh finds
# drifted: policy bodies are the shared stack's, the rest lab-a's own.
DRIFTED = {
    "role policies": ("lab-a", "AuthBackendRole"),
    "role bound namespaces": ("lab-a", "AuthBackendRole"),
    "mount config host": ("lab-a", "AuthBackendConfig"),
    "policy body": ("vault", "Policy"),
    "reviewer binding deleted": ("lab-a", "ClusterRoleBinding"),
    "reviewer service account deleted": ("lab-a", "ServiceAccount"),
}
# Both role drifts rewrite the same role (the second would hide the first): that one goes alone.
AT_ONCE = [d for d in DRIFTS if d != "role bound namespaces"]


def _reported(stacks: list[str]) -> dict[str, set[tuple[str, str]]]:
    """The default preview (it refreshes first) of `stacks`: per stack, (type, name) of each step
    marked as drift; exit 3 (changes) expected."""
    result = runner.invoke(app, ["preview", *stacks, "--expect-no-changes", "--format", "json"])
    assert result.exit_code == 3, result.output
    return {
        s["stack"]: {(step["type"].rsplit(":", 1)[-1], step["name"]) for step in s["steps"] if step["drift"]}
        for s in json.loads(result.stdout)
    }


def _check_reported_and_put_back(lab, drifts: list[str]) -> None:
    for drift in drifts:
        DRIFTS[drift][0](lab)
    stacks = [s for s in ("vault", "lab-a") if any(DRIFTED[d][0] == s for d in drifts)]
    reported = _reported(stacks)
    for drift in drifts:
        stack, kind = DRIFTED[drift]
        assert any(k == kind for k, _ in reported[stack]), (drift, reported)
    # `vaultfleet up` without options puts them back (the shared stack's first, as the pipeline does).
    result = runner.invoke(app, ["up", *stacks])
    assert result.exit_code == 0, result.output
    assert {d: bool(DRIFTS[d][1](lab)) for d in drifts} == dict.fromkeys(drifts, True)
    _logins_work(drifts)


# Server-dependent: a drift in Vault is read back (refresh) and rewritten through the provider, and a
# deleted reviewer ServiceAccount takes its token with it, so the repair writes the new reviewer JWT
# into Vault's auth config.
@pytest.mark.server
def test_every_drift_is_marked_as_such_and_put_back_by_the_default_up(lab, project):
    _check_reported_and_put_back(lab, AT_ONCE)


@pytest.mark.server
def test_a_role_rebound_to_every_namespace_is_marked_and_put_back(lab, project):
    _check_reported_and_put_back(lab, ["role bound namespaces"])


@pytest.mark.server
def test_a_plain_pulumi_up_puts_every_drift_back_at_once(lab, lab_env, project):
    """Pulumi.yaml's `refresh: always`: a plain `pulumi up` of each owning stack repairs them all."""
    for drift in AT_ONCE:
        DRIFTS[drift][0](lab)
    for stack in ("vault", "lab-a"):  # the shared stack's policy bodies first, as the pipeline does
        plain = subprocess.run(
            ["pulumi", "up", "--yes", "--skip-preview", "--stack", stack, "--non-interactive", "--color", "never"],
            cwd=project,
            env=lab_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert plain.returncode == 0, plain.stdout + plain.stderr
    assert {d: bool(DRIFTS[d][1](lab)) for d in AT_ONCE} == dict.fromkeys(AT_ONCE, True)
    _logins_work(AT_ONCE)
    after = runner.invoke(app, ["preview", "vault", "lab-a", "--expect-no-changes"])
    assert after.exit_code == 0, after.output
