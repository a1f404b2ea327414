"""Consumers on the lab: namespace-scoped KV, generated objects against the real CRDs, Vault Agent.

One module over 300 lines: its tests walk one fleet through its life, and that fleet (two stacks up,
the CRDs installed) is a module fixture, brought up once; split, each module would bring it up again.

The fleet here is the shared stack and lab-a, whose stack file gains the kv-namespace policy and a
role `team` bound to every namespace. The tests share that fleet, brought up once by the fixture;
none depends on another.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import hvac
import pytest
import yaml
from kubernetes import client
from typer.testing import CliRunner

from tests.harness import (
    Fleet,
    add_team_role,
    copy_project,
    destroy_stacks,
    edit_stack,
    up_stacks,
    use_lab_for_cli,
)
from tests.lab import consumer_checks, k8s
from tests.lab.agent import run_agent
from tests.lab.consumer_checks import assert_role_admits, patched_pod_template
from tests.lab.consumer_checks import assert_subset as _assert_subset
from tests.lab.consumer_checks import create_strict as _create
from vaultfleet.cli import app

# `server` on every test but test_3: they log in, read the mounts, roles and namespace-templated
# policies the server holds, run the server's own agent, or verify against it. test_3 is the CRDs
# refusing a misspelt field: the kube-apiserver alone (server-independent).
pytestmark = pytest.mark.lab
runner = CliRunner()

CLUSTER, MOUNT = "lab-a", "k8s-lab-a"
# The CRDs tools/fetch-crds.sh caches, by project: only those the generated objects use.
CRDS = {
    "external-secrets": ["secretstores", "clustersecretstores", "externalsecrets"],
    "vault-secrets-operator": ["vaultconnections", "vaultauths", "vaultstaticsecrets"],
}


@pytest.fixture(scope="module")
def fleet(lab, lab_env, tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("consumers"))
    edit_stack(project, CLUSTER, lambda config: add_team_role(config, ttl="15m"))
    fleet = Fleet(lab, lab_env, project, ("vault", CLUSTER), cluster=CLUSTER)
    up_stacks(project, lab_env, ["vault", CLUSTER])
    yield fleet
    k8s.delete_namespace(fleet.kube, "team-x", "team-y")
    destroy_stacks(project, lab_env, [CLUSTER, "vault"])


@pytest.fixture(scope="module")
def crds(fleet):
    """The projects' own CRDs in lab-a, as tools/fetch-crds.sh cached them; removed afterwards."""
    names = consumer_checks.install(fleet.kube, CRDS)
    yield names
    consumer_checks.remove(fleet.kube, names)


@pytest.mark.server
def test_1_one_role_gives_each_namespace_its_own_subtree(fleet):
    accessor = fleet.vault.sys.list_auth_methods()["data"][f"{MOUNT}/"]["accessor"]
    body = fleet.vault.sys.read_acl_policy(f"{MOUNT}-kv-namespace")["data"]["policy"]
    # The component filled in the accessor Vault gave the mount.
    assert f"{{{{identity.entity.aliases.{accessor}.metadata.service_account_namespace}}}}" in body
    assert "${" not in body

    for namespace in ("team-x", "team-y"):
        fleet.write(f"clusters/{CLUSTER}/namespaces/{namespace}/config", {"owner": namespace})
    fleet.write(f"clusters/{CLUSTER}/config", {"owner": "cluster"})

    for mine, other in (("team-x", "team-y"), ("team-y", "team-x")):
        token = fleet.login("team", mine, "app")
        own = token.secrets.kv.v2.read_secret_version(
            f"clusters/{CLUSTER}/namespaces/{mine}/config", mount_point="kv", raise_on_deleted_version=True
        )
        assert own["data"]["data"] == {"owner": mine}
        for denied in (f"clusters/{CLUSTER}/namespaces/{other}/config", f"clusters/{CLUSTER}/config"):
            with pytest.raises(hvac.exceptions.Forbidden):
                token.secrets.kv.v2.read_secret_version(denied, mount_point="kv", raise_on_deleted_version=True)
        # Read-only: not even its own subtree is writable.
        with pytest.raises(hvac.exceptions.Forbidden):
            token.secrets.kv.v2.create_or_update_secret(
                f"clusters/{CLUSTER}/namespaces/{mine}/config", secret={"x": "y"}, mount_point="kv"
            )
        token.auth.token.revoke_self()


def _assert_kv_mount(fleet, path: str, version: str) -> None:
    mount = fleet.vault.sys.list_mounted_secrets_engines()["data"][f"{path}/"]
    assert (mount["type"], mount["options"]["version"]) == ("kv", version)


CASES = [
    ("eso", "app", "app", []),
    ("eso", "deployer", "ci", ["--cluster-store"]),
    ("eso", "team", "team-x", ["--namespace", "team-x"]),
    ("vso", "app", "app", []),
    ("vso", "team", "team-y", ["--namespace", "team-y"]),
]


@pytest.mark.server
@pytest.mark.parametrize(("kind", "role", "namespace", "extra"), CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_2_generated_objects_are_accepted_by_the_real_crds_and_match_vault(fleet, crds, kind, role, namespace, extra):
    documents = fleet.consumers("--kind", kind, "--role", role, *extra)
    stored = {}
    for document in documents:
        kept = _create(fleet.kube, document)
        _assert_subset(document["spec"], kept["spec"])
        stored[kept["kind"]] = kept

    if kind == "eso":
        store = stored.get("SecretStore") or stored["ClusterSecretStore"]
        vault = store["spec"]["provider"]["vault"]
        auth = vault["auth"]["kubernetes"]
        account = auth["serviceAccountRef"]
        assert vault["server"] == fleet.lab.vault_addr
        _assert_kv_mount(fleet, vault["path"], vault["version"].removeprefix("v"))
        assert_role_admits(
            fleet.vault,
            auth["mountPath"],
            auth["role"],
            account.get("namespace", namespace),
            account["name"],
            account.get("audiences"),
        )
        secret_path = (vault["path"], stored["ExternalSecret"]["spec"]["dataFrom"][0]["extract"]["key"])
        login = (auth["role"], account["name"], account.get("audiences"))
    else:
        connection, auth, static = stored["VaultConnection"], stored["VaultAuth"], stored["VaultStaticSecret"]
        assert connection["spec"]["address"] == fleet.lab.vault_addr
        assert auth["spec"]["vaultConnectionRef"] == connection["metadata"]["name"]
        kube = auth["spec"]["kubernetes"]
        assert_role_admits(
            fleet.vault, auth["spec"]["mount"], kube["role"], namespace, kube["serviceAccount"], kube.get("audiences")
        )
        assert static["spec"]["vaultAuthRef"] == auth["metadata"]["name"]
        _assert_kv_mount(fleet, static["spec"]["mount"], static["spec"]["type"].removeprefix("kv-v"))
        secret_path = (static["spec"]["mount"], static["spec"]["path"])
        login = (kube["role"], kube["serviceAccount"], kube.get("audiences"))

    # What the operator would do with these objects: log in as the ServiceAccount, read the secret.
    role_name, account, audiences = login
    fleet.write(secret_path[1], {"value": f"{kind}-{namespace}"})
    token = fleet.login(role_name, namespace, account, audience=(audiences or [None])[0])
    read = token.secrets.kv.v2.read_secret_version(
        secret_path[1], mount_point=secret_path[0], raise_on_deleted_version=True
    )
    assert read["data"]["data"] == {"value": f"{kind}-{namespace}"}
    token.auth.token.revoke_self()


def test_3_strict_validation_refuses_a_misspelt_field(fleet, crds):
    # The check above means something only if the CRDs do refuse what they do not know.
    auth = next(d for d in fleet.consumers("--kind", "vso", "--role", "app") if d["kind"] == "VaultAuth")
    auth["metadata"]["name"] = "misspelt"
    auth["spec"]["mountPath"] = auth["spec"].pop("mount")  # external-secrets' name for it
    with pytest.raises(client.ApiException) as info:
        _create(fleet.kube, auth)
    assert info.value.status == 400
    assert 'strict decoding error: unknown field "spec.mountPath"' in json.loads(info.value.body)["message"]


@pytest.mark.server
def test_4_injector_patch_applies_and_its_fields_match_vault(fleet):
    (patch,) = fleet.consumers("--kind", "injector", "--role", "app")
    pod = patched_pod_template(fleet.kube, "app", "web", patch)

    annotations = pod.metadata.annotations
    assert annotations["vault.hashicorp.com/agent-inject"] == "true"
    assert annotations["vault.hashicorp.com/service"] == fleet.lab.vault_addr
    auth_path = annotations["vault.hashicorp.com/auth-path"]
    assert auth_path.startswith("auth/")  # the injector's agent takes the path as written
    (volume,) = [
        v
        for v in pod.spec.volumes
        if v.name == annotations["vault.hashicorp.com/agent-service-account-token-volume-name"]
    ]
    audience = volume.projected.sources[0].service_account_token.audience
    assert_role_admits(
        fleet.vault,
        auth_path.removeprefix("auth/"),
        annotations["vault.hashicorp.com/role"],
        "app",
        pod.spec.service_account_name,
        [audience],
    )
    assert pod.spec.containers[0].name == "web"  # the patch merged, it did not replace the pod spec

    # The secret annotation names a path this role can read, with a token for that audience.
    path = annotations["vault.hashicorp.com/agent-inject-secret-config"]
    fleet.write(path.removeprefix("kv/data/"), {"password": "injected"})
    token = fleet.login(
        annotations["vault.hashicorp.com/role"], "app", pod.spec.service_account_name, audience=audience
    )
    assert token.read(path)["data"]["data"] == {"password": "injected"}
    assert f'with secret "{path}"' in annotations["vault.hashicorp.com/agent-inject-template-config"]
    token.auth.token.revoke_self()


@pytest.mark.server
@pytest.mark.parametrize(("role", "namespace"), [("app", "app"), ("team", "team-x")])
def test_5_vault_agent_logs_in_and_renders_the_generated_template(fleet, tmp_path, role, namespace):
    args = ["--kind", "agent", "--role", role] + (["--namespace", namespace] if role == "team" else [])
    config = fleet.consumers(*args)
    (template,) = config["template"]
    path = re.search(r'with secret "([^"]+)"', template["contents"]).group(1)
    fleet.write(path.removeprefix("kv/data/"), {"user": f"{role}-user", "password": f"{namespace}-pw"})

    # What a pod would mount: a TokenRequest token of the bound ServiceAccount, for the role's audience.
    method = config["auto_auth"]["method"][0]
    k8s.ensure_service_account(fleet.kube, namespace, "app")
    token_file = tmp_path / "token"
    token_file.write_text(k8s.request_token(fleet.kube, namespace, "app", audience="vault"))
    token_file.chmod(0o600)
    # Only file locations change; role, mount, address and template are vaultfleet's.
    method["config"]["token_path"] = str(token_file)
    template["destination"] = str(tmp_path / "secrets" / Path(template["destination"]).name)

    code, output = run_agent(fleet.lab.vault_cli, config, tmp_path)
    assert code == 0, output
    rendered = Path(template["destination"]).read_text()
    assert rendered == f"password={namespace}-pw\nuser={role}-user\n"


@pytest.mark.server
def test_6_verify_probes_the_namespace_templated_paths(fleet, lab_env, monkeypatch):
    # verify logs in from its own probe namespace and checks the path Vault resolves for it.
    use_lab_for_cli(monkeypatch, fleet.project, lab_env)
    result = runner.invoke(app, ["verify", CLUSTER, "--role", "team", "--json"])
    assert result.exit_code == 0, result.output
    (check,) = json.loads(result.stdout)
    assert check["ok"], check
    probes = {path: caps for path, caps in check["capabilities"].items() if "/namespaces/" in path}
    assert probes == {
        f"kv/data/clusters/{CLUSTER}/namespaces/vaultfleet-verify/vaultfleet-verify": ["read"],
        f"kv/metadata/clusters/{CLUSTER}/namespaces/vaultfleet-verify/vaultfleet-verify": ["list", "read"],
    }


@pytest.mark.server
def test_7_up_creates_the_consumer_objects_a_role_asks_for_and_removes_them(fleet, crds):
    path = fleet.project / "stacks" / f"Pulumi.{CLUSTER}.yaml"
    original = path.read_text()
    doc = yaml.safe_load(original)
    next(r for r in doc["config"]["vaultfleet:roles"] if r["name"] == "app")["consumers"] = ["eso", "vso"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    k8s.ensure_namespace(fleet.kube, "app")
    objects = client.CustomObjectsApi(fleet.kube)
    wanted = [
        ("external-secrets.io", "v1", "secretstores", "vaultfleet-app"),
        ("secrets.hashicorp.com", "v1beta1", "vaultconnections", "vaultfleet"),
        ("secrets.hashicorp.com", "v1beta1", "vaultauths", "vaultfleet-app"),
    ]
    try:
        result = fleet.stacks[CLUSTER].up(color="never")
        assert result.summary.result == "succeeded", result.stderr
        assert result.summary.resource_changes.get("create") == 4, result.summary.resource_changes  # component + 3
        # What `vaultfleet consumers` prints for the role is what `up` put in the cluster.
        printed = {
            d["kind"]: d
            for d in fleet.consumers("--kind", "eso", "--role", "app")
            + fleet.consumers("--kind", "vso", "--role", "app")
        }
        for group, version, plural, name in wanted:
            stored = objects.get_namespaced_custom_object(group, version, "app", plural, name)
            _assert_subset(printed[stored["kind"]]["spec"], stored["spec"])
        store = objects.get_namespaced_custom_object(
            "external-secrets.io", "v1", "app", "secretstores", "vaultfleet-app"
        )
        auth = store["spec"]["provider"]["vault"]["auth"]["kubernetes"]
        assert_role_admits(
            fleet.vault,
            auth["mountPath"],
            auth["role"],
            "app",
            auth["serviceAccountRef"]["name"],
            auth["serviceAccountRef"].get("audiences"),
        )
    finally:
        path.write_text(original)
        result = fleet.stacks[CLUSTER].up(color="never")
    assert result.summary.result == "succeeded", result.stderr
    for group, version, plural, name in wanted:
        with pytest.raises(client.ApiException) as info:
            objects.get_namespaced_custom_object(group, version, "app", plural, name)
        assert info.value.status == 404
