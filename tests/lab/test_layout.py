"""The per-cluster layout on the lab (issue 29, docs/fleet-layout.md): a fleet the shared layout
brought up moves to it without one object in Vault changing, and then runs as it should.

test_1 brings two clusters up in the shared layout (the shared stack writes their mounts and
policies), a workload logs in; Pulumi.yaml then says `per-cluster` and `vaultfleet migrate` moves
each cluster's objects into its access stack vault.<cluster> (state only). The preview that follows
changes nothing but what the layout adds (each access stack's preview grants policy), `up` keeps
every mount's accessor and the token the workload holds, and a second preview finds nothing.
test_2 onboards a third cluster as the pipeline would (one new file, `up --changed-since`: the
shared stack, the new access stack, the new cluster stack) and a workload logs in there.
test_3 tries the identities the split must keep apart: the cluster's applier (its stage's token)
brings its own cluster stack up but cannot write its access stack's objects, alone or by running
the access stack; the previewer reads an access stack through its preview grants but writes nothing.
test_4 releases a cluster: both its stacks leave the backend, nothing in Vault changes (test_adopt
adopts a cluster into the per-cluster layout).

Marked `server`: the issue asks for the migration on both servers, and what the state move and the
new program leave in Vault (an accessor, a token) is the server's. On lab-d, lab-e and lab-f, which
no other module uses while this one runs; the module destroys what it made.
"""

from __future__ import annotations

import json

import hvac
import pytest
from typer.testing import CliRunner

from tests.harness import (
    commit_all,
    copy_project,
    destroy_stacks,
    edit_stack,
    login,
    root_client,
    set_cluster_access,
    vault_token,
)
from tests.lab.refusals import denied
from vaultfleet.cli import app
from vaultfleet.fleet.runner import run
from vaultfleet.stackfile import Project

pytestmark = [pytest.mark.lab, pytest.mark.server, pytest.mark.usefixtures("lab_cli")]
runner = CliRunner()
CLUSTERS = ["lab-d", "lab-e"]
NEW = "lab-f"
STACKS = ["vault", *CLUSTERS, NEW, *(f"vault.{c}" for c in [*CLUSTERS, NEW])]


@pytest.fixture(scope="module")
def project(lab, lab_env, tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("layout"))
    for path in (project / "stacks").glob("Pulumi.lab-*.yaml"):
        path.unlink()  # lab-a and lab-b are other modules'
    yield project
    try:
        destroy_stacks(project, lab_env, STACKS)
    finally:
        # A released cluster's objects stay in Vault (test_4).
        root = root_client(lab)
        mounts = root.sys.list_auth_methods()["data"]
        for cluster in [*CLUSTERS, NEW]:
            if f"k8s-{cluster}/" in mounts:
                root.sys.disable_auth_method(f"k8s-{cluster}")


def cli(*args: str) -> str:
    """What the command prints on stdout; it must succeed."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def changes(results) -> dict[str, list[tuple[str, str]]]:
    return {r.stack: sorted((s["op"], s["name"]) for s in r.steps) for r in results}


def test_1_a_shared_layout_fleet_migrates_with_no_change_in_vault(project, lab, lab_env):
    for cluster in CLUSTERS:
        cli("onboard", cluster, "--context", cluster)
    cli("up", "vault", *CLUSTERS)
    root = root_client(lab)
    accessors = {c: root.sys.list_auth_methods()["data"][f"k8s-{c}/"]["accessor"] for c in CLUSTERS}
    workload = login(lab, "lab-d")

    set_cluster_access(project, "per-cluster")
    assert "migrated: 2 clusters moved" in cli("migrate", "--yes")
    fleet = Project(project)
    previewed = run(fleet, fleet.all_stack_names(), "preview", env=lab_env)
    assert all(r.ok for r in previewed), [r.error for r in previewed if not r.ok]
    # Only what the layout adds: each cluster's preview grants. No mount made, moved or deleted.
    assert changes(previewed) == {
        "vault": [],
        "vault.lab-d": [("create", "fleet-cluster-lab-d-preview")],
        "vault.lab-e": [("create", "fleet-cluster-lab-e-preview")],
        "lab-d": [],
        "lab-e": [],
    }
    cli("up", "--all")
    assert {c: root.sys.list_auth_methods()["data"][f"k8s-{c}/"]["accessor"] for c in CLUSTERS} == accessors
    assert workload.auth.token.lookup_self()["data"]["path"].startswith("auth/k8s-lab-d/login")
    login(lab, "lab-e")
    again = run(fleet, [f"vault.{c}" for c in CLUSTERS] + ["vault"], "preview", env=lab_env)
    assert all(r.ok and not r.changed for r in again), [(r.stack, r.error, r.steps) for r in again]


def test_2_onboarding_runs_the_shared_stack_the_new_access_stack_and_the_cluster(project, lab):
    commit_all(project, "fleet")
    cli("onboard", NEW, "--context", NEW)
    out = cli("up", "--changed-since", "HEAD", "--format", "json")
    assert sorted(r["stack"] for r in json.loads(out)) == ["lab-f", "vault", "vault.lab-f"]
    login(lab, NEW)


def test_3_the_applier_cannot_write_its_access_stacks_objects_and_the_previewer_only_reads(
    project, lab, lab_env, monkeypatch
):
    root = root_client(lab)
    body = root.sys.read_policy("vaultfleet-apply-lab-d")["data"]["rules"]
    fleet = Project(project)
    with vault_token(root, ["vaultfleet-apply-lab-d"], "15m") as applier:
        env = {**lab_env, "VAULT_TOKEN": applier}
        # Positive control: the applier's own stage goes through.
        (own,) = run(fleet, ["lab-d"], "up", env=env)
        assert own.ok, own.error
        # Its access stack's objects: the policy bodies that say what it may write.
        as_applier = hvac.Client(url=lab.vault_addr, token=applier)
        denied(
            lambda: as_applier.sys.create_or_update_policy(
                "vaultfleet-apply-lab-d", 'path "*" { capabilities = ["sudo"] }'
            )
        )
        # Chained: a file edit that widens its own policies, then the access stack run with its token.
        edit_stack(project, "lab-d", lambda c: c["vaultfleet:roles"][0]["policies"].append("kv-write"))
        try:
            (access,) = run(Project(project), ["vault.lab-d"], "up", env=env)
        finally:
            edit_stack(project, "lab-d", lambda c: c["vaultfleet:roles"][0]["policies"].remove("kv-write"))
        assert not access.ok and "permission denied" in access.error, access.error
    assert root.sys.read_policy("vaultfleet-apply-lab-d")["data"]["rules"] == body

    grants = ["vaultfleet-previewer", "vaultfleet-preview-lab-d"]
    with vault_token(root, grants, "15m") as previewer:
        (read,) = run(fleet, ["vault.lab-d"], "preview", env={**lab_env, "VAULT_TOKEN": previewer})
        assert read.ok and not read.changed, (read.error, read.steps)
        as_previewer = hvac.Client(url=lab.vault_addr, token=previewer)
        denied(
            lambda: as_previewer.sys.create_or_update_policy(
                "vaultfleet-preview-lab-d", 'path "*" { capabilities = ["read"] }'
            )
        )
    assert 'path "auth/k8s-lab-d/role/*"' in root.sys.read_policy("vaultfleet-preview-lab-d")["data"]["rules"]


def test_4_a_release_takes_both_stacks_out_of_the_backend_and_nothing_out_of_vault(project, lab, lab_env):
    root = root_client(lab)
    accessor = root.sys.list_auth_methods()["data"]["k8s-lab-e/"]["accessor"]
    workload = login(lab, "lab-e")
    try:
        _released(project, lab, lab_env, root, accessor, workload)
    finally:
        _unwire_released(lab, root)


def _released(project, lab, lab_env, root, accessor, workload) -> None:
    from pulumi import automation as auto

    from vaultfleet.fleet.engine import pulumi_command

    released = cli("release", "lab-e", "--yes")
    assert "its stack removed" in released
    workspace = auto.LocalWorkspace(work_dir=str(project), env_vars=lab_env, pulumi_command=pulumi_command())
    assert not {"lab-e", "vault.lab-e"} & {s.name for s in workspace.list_stacks()}
    assert not (project / "stacks/Pulumi.lab-e.yaml").exists()
    assert root.sys.list_auth_methods()["data"]["k8s-lab-e/"]["accessor"] == accessor
    workload.auth.token.lookup_self()


def _unwire_released(lab, root) -> None:
    """What the release left of lab-e, which later modules onboard again: its reviewer objects in
    the cluster, its policies (its mount goes in the module's teardown)."""
    from kubernetes import client

    from tests.lab import k8s

    api = k8s.api_client(str(lab.kubeconfig), "lab-e")
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    for delete in (
        lambda: rbac.delete_cluster_role_binding("vault-auth-kube-system-auth-delegator"),
        lambda: core.delete_namespaced_secret("vault-auth-token", "kube-system"),
        lambda: core.delete_namespaced_service_account("vault-auth", "kube-system"),
    ):
        try:
            delete()
        except client.ApiException as exc:
            if exc.status != 404:
                raise
    for name in root.sys.list_policies()["data"]["policies"]:
        if name.startswith(("k8s-lab-e-", "vaultfleet-apply-lab-e", "vaultfleet-preview-lab-e")):
            root.sys.delete_policy(name)
