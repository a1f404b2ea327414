"""`vaultfleet consumers` for a cluster in jwt mode (cluster.authMode jwt): the same mount, roles and
paths, but every consumer logs in through Vault's jwt auth method, each spelling it its own way; the
other modes keep the kubernetes method."""

import json

import pytest

from tests.harness import add_database, by_kind, cluster, consumers, edit_stack, role, runner
from vaultfleet.cli import app
from vaultfleet.consumers.bindings import bindings
from vaultfleet.program.managed import managed_objects
from vaultfleet.render.policy import cluster_policy_rules
from vaultfleet.stackfile.schema import parse

INJECTOR = "vault.hashicorp.com/"
TOKEN_FILE = "/var/run/secrets/vault.hashicorp.com/serviceaccount/token"


def set_mode(project, mode: str, stack: str = "lab-a") -> None:
    edit_stack(project, stack, lambda c: c["vaultfleet:cluster"].update(authMode=mode))


def test_the_binding_carries_the_method_and_the_comment_says_it(project):
    stack = parse(cluster(authMode="jwt"), "lab-a", "f")
    (binding,), _ = bindings(stack, policy_dir=project / "policies")
    assert (binding.auth_method, binding.mount_path) == ("jwt", "k8s-lab-a")
    assert "logs in at auth/k8s-lab-a (Vault's jwt auth method) as ServiceAccount app/app" in binding.describe()
    (binding,), _ = bindings(parse(cluster(), "lab-a", "f"), policy_dir=project / "policies")
    assert binding.auth_method == "kubernetes" and "jwt" not in binding.describe()


def test_injector_sets_the_jwt_method_and_its_token_file(project):
    set_mode(project, "jwt")
    (patch,) = consumers("lab-a", "--kind", "injector", "--role", "app")
    pod = patch["spec"]["template"]
    annotations = pod["metadata"]["annotations"]
    assert annotations[f"{INJECTOR}auth-type"] == "jwt"
    assert annotations[f"{INJECTOR}auth-path"] == "auth/k8s-lab-a"
    assert annotations[f"{INJECTOR}role"] == "app"
    # The jwt method's token file key is `path`; the projected token must stay where kubelet puts it.
    assert annotations[f"{INJECTOR}auth-config-path"] == TOKEN_FILE
    assert annotations[f"{INJECTOR}auth-config-remove-jwt-after-reading"] == "false"
    assert not [a for a in annotations if a.endswith("token-path") or a.endswith("token_path")]
    # The token file is the projected volume's, minted for the role's audience.
    (volume,) = pod["spec"]["volumes"]
    assert annotations[f"{INJECTOR}agent-service-account-token-volume-name"] == volume["name"]
    token = volume["projected"]["sources"][0]["serviceAccountToken"]
    assert (token["audience"], token["path"]) == ("vault", TOKEN_FILE.rsplit("/", 1)[1])
    assert annotations[f"{INJECTOR}agent-inject-secret-config"] == "kv/data/clusters/lab-a/config"


def test_agent_auto_auth_uses_the_jwt_method(project):
    set_mode(project, "jwt")
    result = runner.invoke(app, ["consumers", "lab-a", "--kind", "agent", "--role", "app"])
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout)
    (method,) = config["auto_auth"]["method"]
    assert (method["type"], method["mount_path"]) == ("jwt", "auth/k8s-lab-a")
    assert method["config"] == {"role": "app", "path": TOKEN_FILE, "remove_jwt_after_reading": False}
    assert method["exit_on_err"] is True
    assert config["template"][0]["destination"] == "/vault/secrets/config"
    assert "(Vault's jwt auth method)" in result.stderr


def test_eso_store_uses_auth_jwt_with_a_requested_token(project):
    set_mode(project, "jwt")
    objects = by_kind(consumers("lab-a", "--kind", "eso", "--role", "app"))
    vault = objects["SecretStore"]["spec"]["provider"]["vault"]
    assert list(vault["auth"]) == ["jwt"]
    assert vault["auth"]["jwt"] == {
        "path": "k8s-lab-a",  # no auth/: external-secrets logs in at auth/<path>/login
        "role": "app",
        "kubernetesServiceAccountToken": {"serviceAccountRef": {"name": "app", "audiences": ["vault"]}},
    }
    assert (vault["path"], vault["version"]) == ("kv", "v2")
    assert objects["ExternalSecret"]["spec"]["dataFrom"] == [{"extract": {"key": "clusters/lab-a/config"}}]


def test_eso_cluster_store_names_the_account_namespace_under_the_jwt_token(project):
    set_mode(project, "jwt")
    store = by_kind(consumers("lab-a", "--kind", "eso", "--role", "deployer", "--cluster-store"))["ClusterSecretStore"]
    token = store["spec"]["provider"]["vault"]["auth"]["jwt"]["kubernetesServiceAccountToken"]
    assert token["serviceAccountRef"] == {"name": "deployer", "audiences": ["vault"], "namespace": "ci"}
    assert store["spec"]["conditions"] == [{"namespaces": ["ci"]}]


def test_eso_generator_logs_in_with_jwt_too(project):
    add_database(project)
    set_mode(project, "jwt")
    objects = consumers("lab-a", "--kind", "eso", "--role", "orders")
    (generator,) = [o for o in objects if o["kind"] == "VaultDynamicSecret"]
    assert generator["spec"]["provider"]["auth"] == {
        "jwt": {
            "path": "k8s-lab-a",
            "role": "orders",
            "kubernetesServiceAccountToken": {"serviceAccountRef": {"name": "orders", "audiences": ["vault"]}},
        }
    }


def test_vso_auth_uses_method_jwt(project):
    add_database(project)
    set_mode(project, "jwt")
    objects = consumers("lab-a", "--kind", "vso", "--role", "orders")
    kinds = by_kind(objects)
    auth = kinds["VaultAuth"]["spec"]
    assert (auth["method"], auth["mount"]) == ("jwt", "k8s-lab-a")
    assert auth["jwt"] == {"role": "orders", "serviceAccount": "orders", "audiences": ["vault"]}
    assert "kubernetes" not in auth
    # What reads secrets is unchanged: it names the VaultAuth.
    name = kinds["VaultAuth"]["metadata"]["name"]
    assert {o["spec"]["vaultAuthRef"] for o in objects if o["kind"] in ("VaultStaticSecret", "VaultDynamicSecret")} == {
        name
    }


def test_managed_objects_log_in_with_jwt(project):
    values = cluster(authMode="jwt")
    values["roles"] = [role(consumers=["eso", "vso"])]
    objects = by_kind(
        managed_objects(stack := parse(values, "lab-a", "f"), cluster_policy_rules(stack, project / "policies"))
    )
    assert objects["SecretStore"]["spec"]["provider"]["vault"]["auth"]["jwt"]["path"] == "k8s-lab-a"
    assert objects["VaultAuth"]["spec"]["method"] == "jwt"
    assert objects["VaultAuth"]["spec"]["jwt"]["audiences"] == ["vault"]


@pytest.mark.parametrize("mode", [None, "reviewer-token", "client-jwt"])
def test_other_modes_keep_the_kubernetes_method(project, mode):
    if mode:
        set_mode(project, mode)
    (patch,) = consumers("lab-a", "--kind", "injector", "--role", "app")
    annotations = patch["spec"]["template"]["metadata"]["annotations"]
    assert not [a for a in annotations if a.startswith((f"{INJECTOR}auth-type", f"{INJECTOR}auth-config"))]
    result = runner.invoke(app, ["consumers", "lab-a", "--kind", "agent", "--role", "app"])
    assert result.exit_code == 0, result.output
    (method,) = json.loads(result.stdout)["auto_auth"]["method"]
    assert method["type"] == "kubernetes" and method["config"] == {"role": "app", "token_path": TOKEN_FILE}
    auth = by_kind(consumers("lab-a", "--kind", "eso", "--role", "app"))["SecretStore"]["spec"]["provider"]["vault"]
    assert list(auth["auth"]) == ["kubernetes"] and auth["auth"]["kubernetes"]["mountPath"] == "k8s-lab-a"
    vault_auth = by_kind(consumers("lab-a", "--kind", "vso", "--role", "app"))["VaultAuth"]["spec"]
    assert (vault_auth["method"], vault_auth["kubernetes"]["role"]) == ("kubernetes", "app")
    assert "jwt" not in vault_auth
