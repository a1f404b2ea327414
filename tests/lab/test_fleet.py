"""A fleet of six clusters on one Vault: onboarded, brought up in parallel, isolated pair by pair,
and a fleet run that loses its Vault (sealed, then stopped) half way, then converges on a rerun.

Tests in this module run in order and share one project copy (lab-a..lab-f plus the shared stack).
"""

from __future__ import annotations

import itertools
import json

import hvac
import pytest
import yaml
from typer.testing import CliRunner

from tests.lab import k8s
from tests.lab.conftest import copy_project, use_lab_for_cli
from vaultfleet.cli import app
from vaultfleet.fleet.engine import select_stack
from vaultfleet.fleet.runner import run
from vaultfleet.lab import lab as lab_module
from vaultfleet.project import Project

pytestmark = pytest.mark.lab
runner = CliRunner()
CLUSTERS = [f"lab-{c}" for c in "abcdef"]


@pytest.fixture(scope="module")
def project(lab, lab_env, tmp_path_factory):
    assert len(lab.clusters) >= len(CLUSTERS), "this module needs a lab of 6 clusters (lab up --clusters 6)"
    project = copy_project(tmp_path_factory.mktemp("fleet6"))
    yield project
    if lab_module.LabState.load() is not None:  # a failed test may have left Vault sealed or down
        _vault_back(lab)
    run(Project(project), ["vault", *CLUSTERS], "destroy", env=lab_env, parallel=6)
    for name in ["vault", *CLUSTERS]:
        select_stack(name, project, lab_env).workspace.remove_stack(name)


@pytest.fixture(autouse=True)
def environment(monkeypatch, project, lab_env):
    use_lab_for_cli(monkeypatch, project, lab_env)


def _vault(lab) -> hvac.Client:
    return hvac.Client(url=lab.vault_addr, token=lab.vault_token())


def _vault_back(lab) -> None:
    state = lab_module.LabState.load()
    if not any(p.name == "vault" for p in state.processes):
        lab_module.start_vault(state)
    lab_module.unseal_vault(state)


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
    mounts = _vault(lab).sys.list_auth_methods()["data"]
    for cluster in CLUSTERS:
        assert mounts[f"k8s-{cluster}/"]["type"] == "kubernetes"
        config = _vault(lab).auth.kubernetes.read_config(mount_point=f"k8s-{cluster}")
        assert config["kubernetes_host"] == next(c.server for c in lab.clusters if c.name == cluster)

    converged = runner.invoke(app, ["preview", "--all", "--expect-no-changes"])
    assert converged.exit_code == 0, converged.output


def test_2_every_pair_of_clusters_is_isolated(lab):
    vault = _vault(lab)
    jwts = {}
    for cluster in CLUSTERS:
        vault.secrets.kv.v2.create_or_update_secret(
            f"clusters/{cluster}/db", secret={"owner": cluster}, mount_point="kv"
        )
        api = k8s.api_client(str(lab.kubeconfig), cluster)
        k8s.ensure_service_account(api, "app", "app")
        jwts[cluster] = k8s.request_token(api, "app", "app", audience="vault")

    accepted, refused_logins, refused_reads = [], [], []
    for cluster in CLUSTERS:
        login = hvac.Client(url=lab.vault_addr)
        login.auth.kubernetes.login("app", jwts[cluster], mount_point=f"k8s-{cluster}")
        own = login.secrets.kv.v2.read_secret_version(
            f"clusters/{cluster}/db", mount_point="kv", raise_on_deleted_version=True
        )
        assert own["data"]["data"] == {"owner": cluster}
        accepted.append(cluster)
        for other in CLUSTERS:
            if other == cluster:
                continue
            with pytest.raises(hvac.exceptions.Forbidden):
                login.secrets.kv.v2.read_secret_version(
                    f"clusters/{other}/db", mount_point="kv", raise_on_deleted_version=True
                )
            refused_reads.append((cluster, other))
    for cluster, other in itertools.permutations(CLUSTERS, 2):
        # A token of `cluster` at `other`'s mount: signed by another key, refused by other's TokenReview.
        with pytest.raises(hvac.exceptions.Forbidden):
            hvac.Client(url=lab.vault_addr).auth.kubernetes.login("app", jwts[cluster], mount_point=f"k8s-{other}")
        refused_logins.append((cluster, other))
    assert (len(accepted), len(refused_logins), len(refused_reads)) == (6, 30, 30)


def _add_role_to_every_cluster(project, name: str) -> None:
    for cluster in CLUSTERS:
        path = project / "stacks" / f"Pulumi.{cluster}.yaml"
        doc = yaml.safe_load(path.read_text())
        doc["config"]["vaultfleet:roles"].append(
            {
                "name": name,
                "serviceAccounts": [name],
                "namespaces": [name],
                "policies": ["kv-read"],
                "audience": "vault",
            }
        )
        path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _roles_present(lab, name: str) -> list[str]:
    return [c for c in CLUSTERS if name in _vault(lab).auth.kubernetes.list_roles(mount_point=f"k8s-{c}")["keys"]]


@pytest.mark.parametrize("outage", ["sealed", "down"])
def test_3_vault_lost_mid_run_fails_the_rest_clearly_and_a_rerun_converges(project, lab, lab_env, outage):
    """One stack at a time; after the second finishes, Vault is sealed (or stopped)."""
    role = f"after-{outage}"
    _add_role_to_every_cluster(project, role)
    finished = []

    def lose_vault_after_two(result) -> None:
        finished.append(result.stack)
        if len(finished) == 2:
            state = lab_module.LabState.load()
            lab_module.seal_vault(state) if outage == "sealed" else lab_module.stop_vault(state)

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
