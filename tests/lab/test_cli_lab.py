"""The fleet CLI on the lab: onboard -> up -> verify, verify's failure causes, GitOps preview, access,
and `lab controllers` running external-secrets on what `consumers` prints.

Runs after test_project.py (alphabetical order is file order here: test_cli_lab < test_project,
so this module uses its own stacks' lifecycle and destroys what it creates).
"""

from __future__ import annotations

import base64
import json
import re
import subprocess

import pytest
from kubernetes import client
from typer.testing import CliRunner

from tests.harness import copy_project, destroy_stacks, edit_stack, root_client, vault_token
from tests.lab import consumer_checks, k8s
from vaultfleet.cli import app
from vaultfleet.lab import processes
from vaultfleet.lab.record import LabState
from vaultfleet.toolchain import find_tool

# `server` per test: onboard/up/verify log in and write Vault objects, the breakages and drift are
# Vault writes, access is checked against the server's sys/capabilities (server-dependent); the two
# preview tests only decide from git and the last up's fingerprint which stacks the engine previews,
# without a refresh (server-independent); `lab controllers` starts and stops a controller, whose sync
# is external-secrets' and the kube-apiserver's doing (server-independent).
pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab_cli")]
runner = CliRunner()


@pytest.fixture(scope="module")
def project(lab, lab_env, tmp_path_factory):
    """A git checkout of the project whose lab-a stack file is written by `vaultfleet onboard`."""
    dest = copy_project(tmp_path_factory.mktemp("cli"))
    (dest / ".gitignore").write_text(".venv\n__pycache__/\n")
    (dest / "stacks" / "Pulumi.lab-a.yaml").unlink()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "fleet"], cwd=dest, check=True)
    yield dest
    # Leave the lab's backend as found, even when a test failed half way.
    destroy_stacks(dest, lab_env, ["vault", "lab-a", "lab-b"])


def cli(*args):
    return runner.invoke(app, list(args))


@pytest.fixture()
def fleet_up(lab_cli, project, lab):
    """lab-a onboarded and the three stacks up: what test_1 does and checks. After it, this only
    looks (no engine run); a test run without it gets the fleet here."""
    if not (project / "stacks/Pulumi.lab-a.yaml").exists():
        result = cli("onboard", "lab-a", "--context", "lab-a")
        assert result.exit_code == 0, result.output
    if not {"k8s-lab-a/", "k8s-lab-b/"} <= set(root_client(lab).sys.list_auth_methods()["data"]):
        result = cli("up", "vault", "lab-a", "lab-b")
        assert result.exit_code == 0, result.output


@pytest.mark.server
def test_1_onboard_then_up_with_no_edit_then_verify(project, lab):
    result = cli("onboard", "lab-a", "--context", "lab-a")
    assert result.exit_code == 0, result.output
    assert "caCert" in (project / "stacks/Pulumi.lab-a.yaml").read_text()
    assert cli("onboard", "lab-a", "--context", "lab-a").exit_code == 2  # never overwrites

    result = cli("up", "vault", "lab-a", "lab-b", "--format", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [r["stack"] for r in summary][0] == "vault"  # the shared stack first
    assert all(r["ok"] for r in summary)

    core = client.CoreV1Api(k8s.api_client(str(lab.kubeconfig), "lab-a"))
    try:  # earlier tests may have left it; verify must create the ServiceAccount it checks with
        core.delete_namespaced_service_account("app", "app")
    except client.ApiException as exc:
        assert exc.status == 404
    result = cli("verify", "lab-a")
    assert result.exit_code == 0, result.output
    assert "ok   lab-a/app: app/app logged in" in result.output
    # verify leaves nothing behind: the ServiceAccount it created for the check is gone again.
    with pytest.raises(client.ApiException):
        core.read_namespaced_service_account("app", "app")


BREAKAGES = {
    "audience": (
        lambda v, lab: v.auth.kubernetes.create_role(
            "app",
            bound_service_account_names=["app"],
            bound_service_account_namespaces=["app"],
            audience="someone-else",
            mount_point="k8s-lab-a",
        ),
        "audience mismatch",
    ),
    "service account": (
        lambda v, lab: v.auth.kubernetes.create_role(
            "app",
            bound_service_account_names=["nobody"],
            bound_service_account_namespaces=["app"],
            audience="vault",
            mount_point="k8s-lab-a",
        ),
        "ServiceAccount not bound",
    ),
    "namespace": (
        lambda v, lab: v.auth.kubernetes.create_role(
            "app",
            bound_service_account_names=["app"],
            bound_service_account_namespaces=["elsewhere"],
            audience="vault",
            mount_point="k8s-lab-a",
        ),
        "namespace not bound",
    ),
    "role": (lambda v, lab: v.auth.kubernetes.delete_role("app", mount_point="k8s-lab-a"), "role missing"),
    "ca": (
        lambda v, lab: v.write(
            "auth/k8s-lab-a/config",
            kubernetes_ca_cert=lab.pki("lab-b").ca_cert.read_text(),
            kubernetes_host=lab.clusters[0].server,
        ),
        "unknown CA",
    ),
    "issuer": (
        lambda v, lab: v.write(
            "auth/k8s-lab-a/config",
            issuer="https://wrong.example",
            disable_iss_validation=False,
            kubernetes_host=lab.clusters[0].server,
            kubernetes_ca_cert=lab.pki("lab-a").ca_cert.read_text(),
        ),
        "issuer mismatch",
    ),
    "auth-delegator": (
        lambda v, lab: client.RbacAuthorizationV1Api(
            k8s.api_client(str(lab.kubeconfig), "lab-a")
        ).delete_cluster_role_binding("vault-auth-kube-system-auth-delegator"),
        "lacks system:auth-delegator",
    ),
    "mount": (lambda v, lab: v.sys.disable_auth_method("k8s-lab-a"), "auth mount missing"),
}


@pytest.mark.server
@pytest.mark.usefixtures("fleet_up")
@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_2_verify_names_each_cause_and_up_repairs_it(project, lab, breakage):
    break_it, cause = BREAKAGES[breakage]
    break_it(root_client(lab), lab)
    result = cli("verify", "lab-a", "--role", "app")
    assert result.exit_code == 1, result.output
    assert cause in result.output, result.output
    assert "fix:" in result.output

    # The mount is the shared stack's (its fix says `up` of both); everything else lab-a's own.
    repaired = cli("up", *(["vault"] if breakage == "mount" else []), "lab-a")
    assert repaired.exit_code == 0, repaired.output
    assert cli("verify", "lab-a", "--role", "app").exit_code == 0


@pytest.mark.usefixtures("fleet_up")
def test_3_changed_since_previews_only_the_changed_stack(project):
    # What a repository holds after onboarding: the new stack file and the stacks' encryption salts.
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "onboard lab-a"], cwd=project, check=True)
    edit_stack(project, "lab-b", lambda config: config["vaultfleet:roles"][0].update(ttl="30m"))
    try:
        result = cli("preview", "--changed-since", "HEAD", "--no-refresh", "--format", "json")
        assert result.exit_code == 0, result.output
        summary = {r["stack"]: r for r in json.loads(result.stdout)}
        # lab-b's file, and the shared stack, which writes every cluster's policies from its file.
        assert list(summary) == ["vault", "lab-b"]
        assert summary["lab-b"]["changes"].get("update") == 1
        assert summary["lab-b"]["steps"][0]["type"] == "vault:kubernetes/authBackendRole:AuthBackendRole"
        assert not summary["vault"]["changed"], summary["vault"]  # a ttl is not pinned by the applier

        result = cli("preview", "--all", "--no-refresh", "--format", "markdown")
        assert result.exit_code == 0, result.output
        rows = [ln for ln in result.stdout.splitlines() if ln.startswith("| lab-b |")]
        assert rows and "| ok | 0 | 1 | 0 | 0 |" in rows[0], result.stdout
        assert "| lab-a | ok | 0 | 0 | 0 | 0 | unchanged since its last up (engine not run) |" in result.stdout
    finally:
        subprocess.run(["git", "checkout", "--", "stacks/Pulumi.lab-b.yaml"], cwd=project, check=True)


@pytest.mark.usefixtures("fleet_up")
def test_3b_preview_runs_the_engine_only_where_something_changed(project, lab_env):
    def preview(*args):
        result = cli("preview", "lab-a", "lab-b", "--no-refresh", "--format", "json", *args)
        assert result.exit_code == 0, result.output
        return {r["stack"]: r for r in json.loads(result.stdout)}

    quiet, full = preview(), preview("--full")
    assert all(r["unchanged"] for r in quiet.values()), json.dumps(quiet, indent=1)
    assert not any(r["unchanged"] for r in full.values())  # --full ran the engine...
    for stack in quiet:  # ...and it agrees: nothing to change, as many resources
        assert full[stack]["changes"] == quiet[stack]["changes"] == {"same": full[stack]["changes"]["same"]}

    path = project / "stacks/Pulumi.lab-b.yaml"
    path.write_text(path.read_text().replace("ttl: 1h", "ttl: 45m", 1))
    try:
        edited = preview()
        assert edited["lab-a"]["unchanged"] and not edited["lab-b"]["unchanged"]
        assert edited["lab-b"]["changes"].get("update") == 1, edited["lab-b"]
    finally:
        subprocess.run(["git", "checkout", "--", "stacks/Pulumi.lab-b.yaml"], cwd=project, check=True)
    # A refresh writes the state after the last up: the engine runs again until the next up.
    from vaultfleet.fleet.engine import select_stack

    select_stack("lab-a", project, lab_env).refresh(color="never")
    assert preview()["lab-a"]["unchanged"] is None


@pytest.mark.server
@pytest.mark.usefixtures("fleet_up")
def test_4_refresh_expect_no_changes_catches_out_of_band_role_edit(project, lab):
    assert cli("preview", "lab-a", "--refresh", "--expect-no-changes").exit_code == 0
    root_client(lab).auth.kubernetes.create_role(
        "app",
        bound_service_account_names=["app"],
        bound_service_account_namespaces=["app", "intruder"],
        policies=["k8s-lab-a-kv-read"],
        audience="vault",
        mount_point="k8s-lab-a",
    )
    result = cli("preview", "lab-a", "--refresh", "--expect-no-changes")
    assert result.exit_code == 3, result.output
    assert cli("up", "lab-a", "--refresh").exit_code == 0
    assert cli("preview", "lab-a", "--refresh", "--expect-no-changes").exit_code == 0


@pytest.mark.server
@pytest.mark.usefixtures("fleet_up")
def test_5_access_agrees_with_vault_capabilities(project, lab):
    result = cli("access", "lab-a", "lab-b", "--format", "json")
    assert result.exit_code == 0, result.output
    grants = json.loads(result.stdout)
    assert grants
    root = root_client(lab)
    for policy in {g["policy"] for g in grants}:
        with vault_token(root, [policy], "5m", no_default_policy=True) as token:
            for g in [g for g in grants if g["policy"] == policy]:
                probe = g["path"].replace("*", "probe")
                answer = root.adapter.post("/v1/sys/capabilities", json={"token": token, "paths": [probe]})
                assert sorted(answer[probe]) == sorted(g["capabilities"]), (g, answer[probe])


@pytest.mark.usefixtures("fleet_up")
def test_5b_lab_controllers_runs_external_secrets_that_syncs_what_consumers_prints(lab):
    # docs/consumers.md's walkthrough: `lab controllers`, then `consumers | kubectl apply -f -`.
    api = k8s.api_client(str(lab.kubeconfig), "lab-a")
    extensions = client.ApiextensionsV1Api(api)
    before = {crd.metadata.name for crd in extensions.list_custom_resource_definition().items}
    name = "external-secrets-lab-a"
    result = cli("lab", "controllers", "lab-a", "--kind", "eso")
    try:
        assert result.exit_code == 0, result.output
        assert re.search(rf"external-secrets for lab-a: started, pid \d+, log \S+/{name}\.log", result.stdout)
        assert any(p.name == name for p in LabState.load().processes)  # so `lab down` stops it
        again = cli("lab", "controllers", "lab-a", "--kind", "eso")
        assert again.exit_code == 0, again.output
        assert "external-secrets for lab-a: already running" in again.stdout
        assert [p.name for p in LabState.load().processes].count(name) == 1

        k8s.ensure_service_account(api, "app", "app")  # the workload's: role app binds app/app
        root_client(lab).secrets.kv.v2.create_or_update_secret(
            "clusters/lab-a/config", secret={"greeting": "synced"}, mount_point="kv"
        )
        printed = cli("consumers", "lab-a", "--kind", "eso", "--role", "app")
        assert printed.exit_code == 0, printed.output
        kubectl = [find_tool("kubectl"), "--context", "lab-a"]
        subprocess.run([*kubectl, "apply", "-f", "-"], input=printed.stdout, text=True, check=True)

        core = client.CoreV1Api(api)
        secret = processes.wait_until(lambda: core.read_namespaced_secret("config", "app"), 60, "Secret app/config")
        assert base64.b64decode(secret.data["greeting"]).decode() == "synced"
    finally:
        stopped = cli("lab", "controllers", "lab-a", "--kind", "eso", "--stop")
        # What it installed goes (the CRDs, their objects with them), and what the test made.
        after = {crd.metadata.name for crd in extensions.list_custom_resource_definition().items}
        consumer_checks.remove(api, sorted(after - before))
        core = client.CoreV1Api(api)
        for delete, made in (
            (core.delete_namespaced_secret, "config"),
            (core.delete_namespaced_service_account, "app"),
        ):
            try:
                delete(made, "app")
            except client.ApiException as exc:
                if exc.status != 404:
                    raise
    assert stopped.exit_code == 0, stopped.output
    assert re.search(rf"{name}: stopped \(pid \d+\)", stopped.stdout)
    assert not any(p.name == name for p in LabState.load().processes)


@pytest.mark.server
def test_6_destroy_all(project, lab):
    result = cli("destroy", "--all", "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    order = [r["stack"] for r in json.loads(result.stdout)]
    assert order[-1] == "vault"  # the shared stack last
    mounts = root_client(lab).sys.list_auth_methods()["data"]
    assert not [m for m in mounts if m.startswith("k8s-")]
