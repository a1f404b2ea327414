"""A fleet of six clusters on one Vault: onboarded, brought up in parallel, isolated pair by pair,
and a fleet run that loses its Vault (sealed, then stopped) half way, then converges on a rerun.

The tests share one project copy (lab-a..lab-f plus the shared stack); test_1 onboards and brings
up the six, and the others get them from the `fleet_up` fixture, which only looks when test_1 ran.
"""

from __future__ import annotations

import itertools
import json
import re

import hvac
import pytest
from kubernetes import client
from typer.testing import CliRunner

from tests.harness import copy_project, destroy_stacks, edit_stack, root_client, up_stacks
from tests.lab import k8s
from tests.lab.refusals import denied, refused
from vaultfleet.cli import app
from vaultfleet.fleet.runner import run
from vaultfleet.lab import vault as lab_vault
from vaultfleet.lab.record import LabState
from vaultfleet.stackfile import Project

# Server-dependent: onboarding and ups write Vault objects, the isolation test logs in at every mount
# and reads KV, and how a sealed server answers (test_4). The outage mid-run (test_3) is the fleet
# runner's and the engine's behaviour once the server stops answering: the same for either kind, so
# it runs against the first server alone; test_4 checks the second server's sealed answer is named.
pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab_cli")]
runner = CliRunner()
CLUSTERS = [f"lab-{c}" for c in "abcdef"]


@pytest.fixture(scope="module")
def project(lab, lab_env, tmp_path_factory):
    assert len(lab.clusters) >= len(CLUSTERS), "this module needs a lab of 6 clusters (lab up --clusters 6)"
    project = copy_project(tmp_path_factory.mktemp("fleet6"))
    yield project
    if LabState.load() is not None:  # a failed test may have left Vault sealed or down
        _vault_back(lab)
    destroy_stacks(project, lab_env, ["vault", *CLUSTERS])


def _vault_back(lab) -> None:
    state = LabState.load()
    if not any(p.name == "vault" for p in state.processes):
        lab_vault.start_vault(state)
    lab_vault.unseal_vault(state)


@pytest.mark.server
def test_1_onboard_four_more_clusters_then_up_all_six_in_parallel(project, lab):
    for cluster in CLUSTERS[2:]:
        result = runner.invoke(app, ["onboard", cluster, "--context", cluster])
        assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["validate"]).exit_code == 0

    result = runner.invoke(app, ["up", "--all", "--parallel", "6", "--format", "json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary[0]["stack"] == "vault"
    assert sorted(r["stack"] for r in summary[1:]) == CLUSTERS and all(r["ok"] for r in summary)
    mounts = root_client(lab).sys.list_auth_methods()["data"]
    for cluster in CLUSTERS:
        assert mounts[f"k8s-{cluster}/"]["type"] == "kubernetes"
        config = root_client(lab).auth.kubernetes.read_config(mount_point=f"k8s-{cluster}")
        assert config["kubernetes_host"] == next(c.server for c in lab.clusters if c.name == cluster)

    converged = runner.invoke(app, ["preview", "--all", "--expect-no-changes"])
    assert converged.exit_code == 0, converged.output


@pytest.fixture()
def fleet_up(lab_cli, project, lab, lab_env):
    """The six clusters onboarded and up: what test_1 does and checks. After it, this only looks
    (no engine run); a test run without it gets the fleet here."""
    for cluster in CLUSTERS:
        if not (project / "stacks" / f"Pulumi.{cluster}.yaml").exists():
            result = runner.invoke(app, ["onboard", cluster, "--context", cluster])
            assert result.exit_code == 0, result.output
    mounts = root_client(lab).sys.list_auth_methods()["data"]
    if not all(f"k8s-{cluster}/" in mounts for cluster in CLUSTERS):
        up_stacks(project, lab_env, ["vault", *CLUSTERS], parallel=6)


# A login whose TokenReview fails: the kubernetes method names a binding or an audience it refuses,
# but of a failed review says no more than this (the API server it asked says why: NOT_ISSUED_HERE).
REVIEW_FAILED = r"^permission denied, on "
# The API server, of a token another cluster issued: its issuer is not the server's, no key of its
# own checks it.
NOT_ISSUED_HERE = r"invalid bearer token"


def api_review(lab, cluster: str, jwt: str) -> client.V1TokenReviewStatus:
    """What `cluster`'s API server says of `jwt` (a TokenReview by the lab's admin, as the cluster's
    reviewer asks it at a login)."""
    api = k8s.api_client(str(lab.kubeconfig), cluster)
    review = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=jwt, audiences=["vault"]))
    return client.AuthenticationV1Api(api).create_token_review(review).status


@pytest.mark.server
@pytest.mark.usefixtures("fleet_up")
def test_2_every_pair_of_clusters_is_isolated(lab):
    vault = root_client(lab)
    jwts = {}
    for cluster in CLUSTERS:
        vault.secrets.kv.v2.create_or_update_secret(
            f"clusters/{cluster}/db", secret={"owner": cluster}, mount_point="kv"
        )
        api = k8s.api_client(str(lab.kubeconfig), cluster)
        k8s.ensure_service_account(api, "app", "app")
        jwts[cluster] = k8s.request_token(api, "app", "app", audience="vault")

    for cluster in CLUSTERS:
        # Positive control: at its own mount the token logs in and reads its cluster's path.
        login = hvac.Client(url=lab.vault_addr)
        login.auth.kubernetes.login("app", jwts[cluster], mount_point=f"k8s-{cluster}")
        own = login.secrets.kv.v2.read_secret_version(
            f"clusters/{cluster}/db", mount_point="kv", raise_on_deleted_version=True
        )
        assert own["data"]["data"] == {"owner": cluster}
        for other in CLUSTERS:
            if other == cluster:
                continue
            denied(
                lambda o=other, c=login: c.secrets.kv.v2.read_secret_version(
                    f"clusters/{o}/db", mount_point="kv", raise_on_deleted_version=True
                )
            )
    roles = {cluster: vault.read(f"auth/k8s-{cluster}/role/app")["data"] for cluster in CLUSTERS}
    for cluster, other in itertools.permutations(CLUSTERS, 2):
        # A token of `cluster` at `other`'s mount: role app of `other` binds app/app and audience
        # vault, as the token says, so only its origin is at fault: `other`'s API server does not
        # authenticate it (its TokenReview), and Vault says no more than that.
        refused(
            lambda c=cluster, o=other: hvac.Client(url=lab.vault_addr).auth.kubernetes.login(
                "app", jwts[c], mount_point=f"k8s-{o}"
            ),
            REVIEW_FAILED,
            hvac.exceptions.Forbidden,
        )
        status = api_review(lab, other, jwts[cluster])
        assert not status.authenticated and re.search(NOT_ISSUED_HERE, status.error), (cluster, other, status)
    # The roles and secrets, re-read: as each cluster's stack and the admin wrote them.
    assert {cluster: vault.read(f"auth/k8s-{cluster}/role/app")["data"] for cluster in CLUSTERS} == roles
    for cluster in CLUSTERS:
        again = vault.secrets.kv.v2.read_secret_version(
            f"clusters/{cluster}/db", mount_point="kv", raise_on_deleted_version=True
        )
        assert again["data"]["data"] == {"owner": cluster}


def _add_role_to_every_cluster(project, name: str) -> None:
    role = {"name": name, "serviceAccounts": [name], "namespaces": [name], "policies": ["kv-read"], "audience": "vault"}
    for cluster in CLUSTERS:
        edit_stack(project, cluster, lambda config: config["vaultfleet:roles"].append(dict(role)))


def _roles_present(lab, name: str) -> list[str]:
    return [c for c in CLUSTERS if name in root_client(lab).auth.kubernetes.list_roles(mount_point=f"k8s-{c}")["keys"]]


@pytest.mark.usefixtures("fleet_up")
@pytest.mark.parametrize("outage", ["sealed", "down"])
def test_3_vault_lost_mid_run_fails_the_rest_clearly_and_a_rerun_converges(project, lab, lab_env, outage):
    """One stack at a time; after the second finishes, Vault is sealed (or stopped)."""
    role = f"after-{outage}"
    _add_role_to_every_cluster(project, role)
    # The privileged stage first: the new role's path in each cluster's applier policy.
    assert runner.invoke(app, ["up", "vault"]).exit_code == 0
    finished = []

    def lose_vault_after_two(result) -> None:
        finished.append(result.stack)
        if len(finished) == 2:
            state = LabState.load()
            lab_vault.seal_vault(state) if outage == "sealed" else lab_vault.stop_vault(state)

    results = run(Project(project), CLUSTERS, "up", parallel=1, env=lab_env, on_result=lose_vault_after_two)
    ok = [r.stack for r in results if r.ok]
    failed = {r.stack: r.error for r in results if not r.ok}
    assert len(ok) == 2 and len(failed) == 4, (ok, failed)
    expected = "is sealed" if outage == "sealed" else "is unreachable"
    for stack, error in failed.items():
        assert error.splitlines()[0].endswith("then rerun") and expected in error, (stack, error)

    _vault_back(lab)
    assert _roles_present(lab, role) == ok  # the two that ran are intact; the rest untouched
    rerun = runner.invoke(app, ["up", *CLUSTERS, "--parallel", "6", "--format", "json"])
    assert rerun.exit_code == 0, rerun.output
    assert _roles_present(lab, role) == CLUSTERS
    converged = runner.invoke(app, ["preview", "--all", "--refresh", "--expect-no-changes"])
    assert converged.exit_code == 0, converged.output


@pytest.mark.server
def test_4_a_sealed_server_is_named_and_no_stack_is_started(project, lab):
    """The server's own sealed answer, as the fleet runner reads it before any engine run."""
    state = LabState.load()
    lab_vault.seal_vault(state)
    try:
        result = runner.invoke(app, ["preview", "vault", "lab-a", "--format", "json"])
    finally:
        lab_vault.unseal_vault(state)
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert [r["stack"] for r in summary] == ["vault", "lab-a"]
    for stack in summary:
        assert stack["error"].startswith("not run: ") and "is sealed" in stack["error"], stack
