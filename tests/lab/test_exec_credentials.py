"""Real clusters' credentials (issue 30): two lab clusters reached only through an `exec` plugin, as
EKS's `aws eks get-token` and GKE's `gke-gcloud-auth-plugin` kubeconfigs are, in the second file of
a merged $KUBECONFIG list. `up` of the shared stack, lab-e (reviewer-token mode: the kubernetes
provider makes the reviewer's ServiceAccount, binding and token Secret) and lab-d (jwt mode: its
issuer keys read by the programs of the shared stack, which pins them, and of lab-d, which writes
them), then `verify` of both: the reviewer token as Vault uses it, a real login per role.

The plugin is a small script that prints an ExecCredential with a TokenRequest token of a lab
ServiceAccount bound to cluster-admin (the test requests it once, with the lab's admin kubeconfig,
and hands it over in a file), and records which process ran it. The list holds no other user for
lab-d and lab-e: the admin's client certificates are not in it. Its first file is the lab's
kubeconfig without lab-d and lab-e (the other clusters and their admin): the context each stack
names is in the second file only.

Marked `server`: the issue asks for it on both servers, and what it runs through the exec
credentials (the reviewer token Vault stores and reviews with, the jwt mount's keys, the logins) is
the server's. On lab-d and lab-e, which no other module uses while this one runs (the modules run
one after another; test_adopt, test_adopt_terraform and test_fleet, which use them, destroy what
they made, as this one does).
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from typer.testing import CliRunner

from tests.harness import copy_project, destroy_stacks, edit_stack, root_client, use_lab_for_cli
from tests.lab import k8s
from vaultfleet.cli import app
from vaultfleet.kube import issuer_keys

pytestmark = [pytest.mark.lab, pytest.mark.server]
runner = CliRunner()
REVIEWER, JWT = "lab-e", "lab-d"
CLUSTERS = (REVIEWER, JWT)
ADMIN_NS, ADMIN_SA = "fleet-exec", "fleet-admin"  # the exec identity, in each cluster
EXEC_API = "client.authentication.k8s.io/v1"

PLUGIN = """\
#!{python}
# An exec credential plugin, as `aws eks get-token` is: prints an ExecCredential with the token in
# the file it is given, and records which process ran it (its parent) in runs.jsonl beside it.
import json, os, pathlib, sys

here = pathlib.Path(__file__).parent
parent = pathlib.Path(f"/proc/{{os.getppid()}}")
run = {{
    "token_file": sys.argv[1],
    "parent_pid": os.getppid(),
    "parent": (parent / "comm").read_text().strip(),
    "parent_cmdline": (parent / "cmdline").read_bytes().replace(b"\\0", b" ").decode().strip(),
    "exec_info": json.loads(os.environ.get("KUBERNETES_EXEC_INFO", "{{}}")),
}}
with (here / "runs.jsonl").open("a") as f:
    f.write(json.dumps(run) + "\\n")
token = pathlib.Path(sys.argv[1]).read_text().strip()
print(json.dumps({{"apiVersion": "{api}", "kind": "ExecCredential", "status": {{"token": token}}}}))
"""


def exec_identity(api: client.ApiClient) -> str:
    """A ServiceAccount bound to cluster-admin and a 1-hour TokenRequest token of it."""
    k8s.ensure_service_account(api, ADMIN_NS, ADMIN_SA)
    binding = client.V1ClusterRoleBinding(
        metadata=client.V1ObjectMeta(name=f"{ADMIN_NS}-{ADMIN_SA}"),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="cluster-admin"),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name=ADMIN_SA, namespace=ADMIN_NS)],
    )
    try:
        client.RbacAuthorizationV1Api(api).create_cluster_role_binding(binding)
    except client.ApiException as exc:
        if exc.status != 409:
            raise
    return k8s.request_token(api, ADMIN_NS, ADMIN_SA, seconds=3600)


def remove_exec_identity(api: client.ApiClient) -> None:
    try:
        client.RbacAuthorizationV1Api(api).delete_cluster_role_binding(f"{ADMIN_NS}-{ADMIN_SA}")
    except client.ApiException as exc:
        if exc.status != 404:
            raise
    k8s.delete_namespace(api, ADMIN_NS)


def merged_kubeconfig(lab, directory: Path) -> str:
    """$KUBECONFIG for the module: `lab.yaml`, the lab's kubeconfig without lab-d and lab-e, then
    `exec.yaml`, their clusters and contexts with exec users only."""
    directory.mkdir(mode=0o700)
    plugin = directory / "plugin"
    plugin.write_text(PLUGIN.format(python=sys.executable, api=EXEC_API))
    plugin.chmod(stat.S_IRWXU)
    lab_config = yaml.safe_load(Path(lab.kubeconfig).read_text())
    exec_config = {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": []}
    for cluster in CLUSTERS:
        token_file = directory / f"token-{cluster}"
        token_file.write_text(exec_identity(k8s.api_client(str(lab.kubeconfig), cluster)))
        token_file.chmod(0o600)
        (entry,) = [c for c in lab_config["clusters"] if c["name"] == cluster]
        exec_config["clusters"].append(entry)
        exec_config["users"].append(
            {
                "name": f"{cluster}-exec",
                "user": {
                    "exec": {
                        "apiVersion": EXEC_API,
                        "command": str(plugin),
                        "args": [str(token_file)],
                        "interactiveMode": "Never",
                    }
                },
            }
        )
        exec_config["contexts"].append({"name": cluster, "context": {"cluster": cluster, "user": f"{cluster}-exec"}})
    for key in ("clusters", "contexts"):
        lab_config[key] = [c for c in lab_config[key] if c["name"] not in CLUSTERS]
    lab_config["users"] = [u for u in lab_config["users"] if u["name"] not in {f"{c}-admin" for c in CLUSTERS}]
    lab_config["current-context"] = lab_config["contexts"][0]["name"]
    for name, config in (("lab.yaml", lab_config), ("exec.yaml", exec_config)):
        (directory / name).write_text(yaml.safe_dump(config, sort_keys=False))
        (directory / name).chmod(0o600)
    return os.pathsep.join(str(directory / name) for name in ("lab.yaml", "exec.yaml"))


def runs(directory: Path) -> list[dict]:
    path = directory / "runs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def fleet(lab, lab_env, tmp_path_factory):
    """The project copy with lab-e and lab-d on the exec kubeconfig list, in-process CLI calls on
    it (the whole module, teardown included), and the plugin's directory."""
    base = tmp_path_factory.mktemp("exec")
    project = copy_project(base)
    creds = base / "kube"
    env = {**lab_env, "KUBECONFIG": merged_kubeconfig(lab, creds)}
    lab_b = (project / "stacks/Pulumi.lab-b.yaml").read_text()
    for cluster in CLUSTERS:
        (project / f"stacks/Pulumi.{cluster}.yaml").write_text(
            lab_b.replace("kubeContext: lab-b", f"kubeContext: {cluster}")
        )
    edit_stack(project, JWT, lambda config: config["vaultfleet:cluster"].update(authMode="jwt"))
    try:
        with pytest.MonkeyPatch.context() as mp:
            use_lab_for_cli(mp, project, env)
            yield project, creds
            try:
                destroy_stacks(project, env, [*CLUSTERS, "vault"])  # through the plugin too
            except AssertionError:
                destroy_stacks(project, lab_env, [*CLUSTERS, "vault"])  # the lab admin's: leave nothing
                raise
    finally:
        for cluster in CLUSTERS:
            remove_exec_identity(k8s.api_client(str(lab.kubeconfig), cluster))


def test_up_and_verify_through_an_exec_plugin_in_a_merged_kubeconfig_list(lab, fleet):
    project, creds = fleet
    result = runner.invoke(app, ["up", "vault", *CLUSTERS])
    assert result.exit_code == 0, result.output

    # The kubernetes provider ran the plugin for lab-e (its reviewer objects) with what the list's
    # second file says; the programs of the shared stack (which pins lab-d's keys in its applier
    # policy) and of lab-d (which writes them) read lab-d's keys through it.
    by_cluster = {c: [r for r in runs(creds) if Path(r["token_file"]).name == f"token-{c}"] for c in CLUSTERS}
    assert any(r["parent"].startswith("pulumi-resource") for r in by_cluster[REVIEWER]), by_cluster[REVIEWER]
    programs = {r["parent_pid"] for r in by_cluster[JWT] if "pulumi-language-python-exec" in r["parent_cmdline"]}
    assert len(programs) == 2, by_cluster[JWT]
    assert all(r["exec_info"]["apiVersion"] == EXEC_API for r in runs(creds))

    # What the exec identity made and read is the cluster's (the lab admin reads it back).
    admin = {c: k8s.api_client(str(lab.kubeconfig), c) for c in CLUSTERS}
    client.CoreV1Api(admin[REVIEWER]).read_namespaced_service_account("vault-auth", "kube-system")  # else 404
    root = root_client(lab)
    auths = root.sys.list_auth_methods()["data"]
    assert (auths[f"k8s-{REVIEWER}/"]["type"], auths[f"k8s-{JWT}/"]["type"]) == ("kubernetes", "jwt")
    issuer, keys = issuer_keys(admin[JWT])
    config = root.read(f"auth/k8s-{JWT}/config")["data"]
    assert (config["bound_issuer"], sorted(config["jwt_validation_pubkeys"])) == (issuer, keys)

    # verify: the reviewer token as Vault uses it (lab-e) and a real login per role, each through
    # the plugin.
    before = len(runs(creds))
    output = {}
    for cluster in CLUSTERS:
        result = runner.invoke(app, ["verify", cluster])
        assert result.exit_code == 0, result.output
        output[cluster] = result.output
        assert result.output.count("logged in") == 2, result.output
    assert "reviewer token (kube-system/" in output[REVIEWER] and "Vault can review with it" in output[REVIEWER]
    assert {Path(r["token_file"]).name.removeprefix("token-") for r in runs(creds)[before:]} == set(CLUSTERS)
