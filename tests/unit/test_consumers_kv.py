"""`vaultfleet consumers` for KV: each consumer's fields (injector, ESO, VSO, Vault Agent), spelled the
way that consumer wants them; namespace-scoped roles; the login objects a stack manages."""

import json

import yaml

from tests.harness import VAULT, add_team_role, by_kind, consumers, edit_stack, runner
from vaultfleet.cli import app


def test_injector_annotations_use_the_auth_prefix_and_a_token_for_the_audience(project):
    (patch,) = consumers("lab-a", "--kind", "injector", "--role", "app")
    pod = patch["spec"]["template"]
    annotations = pod["metadata"]["annotations"]
    assert annotations["vault.hashicorp.com/agent-inject"] == "true"
    assert annotations["vault.hashicorp.com/auth-path"] == "auth/k8s-lab-a"
    assert annotations["vault.hashicorp.com/role"] == "app"
    assert annotations["vault.hashicorp.com/service"] == VAULT
    # KV v2 through the agent: the data/ path.
    assert annotations["vault.hashicorp.com/agent-inject-secret-config"] == "kv/data/clusters/lab-a/config"
    template = annotations["vault.hashicorp.com/agent-inject-template-config"]
    assert 'with secret "kv/data/clusters/lab-a/config"' in template and "{{ $key }}={{ $value }}" in template
    assert pod["spec"]["serviceAccountName"] == "app"
    # The role requires aud=vault: the agent must log in with a projected token for it.
    (volume,) = pod["spec"]["volumes"]
    assert annotations["vault.hashicorp.com/agent-service-account-token-volume-name"] == volume["name"]
    token = volume["projected"]["sources"][0]["serviceAccountToken"]
    assert (token["audience"], token["path"]) == ("vault", "token")


def test_injector_without_audience_has_no_token_volume(project):
    edit_stack(project, "lab-a", lambda c: c["vaultfleet:roles"][0].pop("audience"))
    (patch,) = consumers("lab-a", "--kind", "injector", "--role", "app")
    pod = patch["spec"]["template"]
    assert "volumes" not in pod["spec"]
    assert "vault.hashicorp.com/agent-service-account-token-volume-name" not in pod["metadata"]["annotations"]


def test_eso_store_mount_path_has_no_auth_prefix(project):
    objects = by_kind(consumers("lab-a", "--kind", "eso", "--role", "app"))
    store = objects["SecretStore"]
    assert store["apiVersion"] == "external-secrets.io/v1"
    assert store["metadata"] == {"name": "vaultfleet-app", "namespace": "app"}
    vault = store["spec"]["provider"]["vault"]
    assert (vault["server"], vault["path"], vault["version"]) == (VAULT, "kv", "v2")
    kubernetes = vault["auth"]["kubernetes"]
    assert kubernetes["mountPath"] == "k8s-lab-a"
    assert kubernetes["role"] == "app"
    assert kubernetes["serviceAccountRef"] == {"name": "app", "audiences": ["vault"]}
    external = objects["ExternalSecret"]
    assert external["metadata"]["namespace"] == "app"
    assert external["spec"]["secretStoreRef"] == {"kind": "SecretStore", "name": "vaultfleet-app"}
    # The key inside the mount, without data/ (version v2 adds it).
    assert external["spec"]["dataFrom"] == [{"extract": {"key": "clusters/lab-a/config"}}]


def test_eso_cluster_store_names_the_account_namespace_and_admits_only_it(project):
    objects = by_kind(consumers("lab-a", "--kind", "eso", "--role", "deployer", "--cluster-store"))
    store = objects["ClusterSecretStore"]
    assert "namespace" not in store["metadata"]
    assert store["spec"]["conditions"] == [{"namespaces": ["ci"]}]
    account = store["spec"]["provider"]["vault"]["auth"]["kubernetes"]["serviceAccountRef"]
    assert account == {"name": "deployer", "audiences": ["vault"], "namespace": "ci"}
    assert objects["ExternalSecret"]["spec"]["secretStoreRef"]["kind"] == "ClusterSecretStore"
    assert objects["ExternalSecret"]["metadata"]["namespace"] == "ci"


def test_vso_auth_mount_has_no_auth_prefix(project):
    objects = by_kind(consumers("lab-a", "--kind", "vso", "--role", "app"))
    connection, auth, static = objects["VaultConnection"], objects["VaultAuth"], objects["VaultStaticSecret"]
    assert {o["apiVersion"] for o in objects.values()} == {"secrets.hashicorp.com/v1beta1"}
    assert connection["spec"]["address"] == VAULT
    assert auth["spec"]["vaultConnectionRef"] == connection["metadata"]["name"]
    assert auth["spec"]["method"] == "kubernetes"
    assert auth["spec"]["mount"] == "k8s-lab-a"
    assert auth["spec"]["kubernetes"] == {"role": "app", "serviceAccount": "app", "audiences": ["vault"]}
    assert static["spec"]["vaultAuthRef"] == auth["metadata"]["name"]
    assert (static["spec"]["mount"], static["spec"]["type"], static["spec"]["path"]) == (
        "kv",
        "kv-v2",
        "clusters/lab-a/config",
    )
    assert {o["metadata"]["namespace"] for o in objects.values()} == {"app"}


def test_fleet_overrides_reach_every_consumer(project):
    edit_stack(project, "lab-b", lambda c: c.update({"vaultfleet:mountPrefix": "eu", "vaultfleet:kvMount": "secrets"}))
    (patch,) = consumers("lab-b", "--kind", "injector", "--role", "app")
    annotations = patch["spec"]["template"]["metadata"]["annotations"]
    assert annotations["vault.hashicorp.com/auth-path"] == "auth/eu-lab-b"
    assert annotations["vault.hashicorp.com/agent-inject-secret-config"] == "secrets/data/clusters/lab-b/config"
    store = by_kind(consumers("lab-b", "--kind", "eso", "--role", "app"))["SecretStore"]["spec"]["provider"]["vault"]
    assert (store["auth"]["kubernetes"]["mountPath"], store["path"]) == ("eu-lab-b", "secrets")
    assert by_kind(consumers("lab-b", "--kind", "vso", "--role", "app"))["VaultAuth"]["spec"]["mount"] == "eu-lab-b"


def test_namespace_scoped_role_gets_the_namespace_s_own_path(project):
    edit_stack(project, "lab-a", add_team_role)
    (patch,) = consumers("lab-a", "--kind", "injector", "--role", "team", "--namespace", "team-x", "--secret", "db")
    annotations = patch["spec"]["template"]["metadata"]["annotations"]
    assert annotations["vault.hashicorp.com/agent-inject-secret-db"] == "kv/data/clusters/lab-a/namespaces/team-x/db"
    external = by_kind(consumers("lab-a", "--kind", "eso", "--role", "team", "--namespace", "team-y"))["ExternalSecret"]
    assert external["metadata"]["namespace"] == "team-y"
    assert external["spec"]["dataFrom"][0]["extract"]["key"] == "clusters/lab-a/namespaces/team-y/config"


def test_every_role_by_default_and_wildcard_roles_left_out_with_a_note(project):
    edit_stack(project, "lab-a", add_team_role)
    result = runner.invoke(app, ["consumers", "lab-a", "--kind", "vso"])
    assert result.exit_code == 0, result.output
    auths = [d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] == "VaultAuth"]
    assert [(a["spec"]["kubernetes"]["role"], a["metadata"]["namespace"]) for a in auths] == [
        ("app", "app"),
        ("deployer", "ci"),
    ]
    assert "role team left out: role 'team' binds every namespace ('*'): say which with --namespace" in result.stderr
    # Which ServiceAccount each block logs in as, and what the role binds.
    assert "# lab-a role deployer: logs in at auth/k8s-lab-a as ServiceAccount ci/deployer" in result.stdout


def test_json_format_and_the_binding_on_stderr(project):
    result = runner.invoke(app, ["consumers", "lab-a", "--kind", "eso", "--role", "app", "--format", "json"])
    assert result.exit_code == 0, result.output
    documents = json.loads(result.stdout)
    assert [d["kind"] for d in documents] == ["SecretStore", "ExternalSecret"]
    assert "as ServiceAccount app/app" in result.stderr


def test_agent_config(project):
    result = runner.invoke(app, ["consumers", "lab-a", "--kind", "agent", "--role", "app"])
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout)
    (method,) = config["auto_auth"]["method"]
    assert (method["type"], method["mount_path"], method["config"]["role"]) == ("kubernetes", "auth/k8s-lab-a", "app")
    # Refused logins and unrenderable templates stop the agent rather than retrying unseen.
    assert method["exit_on_err"] is True and config["template_config"]["exit_on_retry_failure"] is True
    assert config["vault"]["address"] == VAULT
    (template,) = config["template"]
    assert template["destination"] == "/vault/secrets/config"
    assert 'with secret "kv/data/clusters/lab-a/config"' in template["contents"]
    assert "listener" not in config


def test_access_and_validate_handle_the_namespace_template(project):
    edit_stack(project, "lab-a", add_team_role)
    assert runner.invoke(app, ["validate", "lab-a", "--strict"]).exit_code == 0
    rows = json.loads(runner.invoke(app, ["access", "lab-a", "--format", "json"]).stdout)
    team = {r["path"] for r in rows if r["role"] == "team"}
    assert team == {
        "kv/data/clusters/lab-a/namespaces/<service_account_namespace>/*",
        "kv/metadata/clusters/lab-a/namespaces/<service_account_namespace>/*",
    }


def test_managed_objects_are_the_login_objects_each_once(project):
    from vaultfleet.program.managed import managed_objects
    from vaultfleet.render.policy import cluster_policy_rules
    from vaultfleet.stackfile.schema import parse

    values = {
        "vaultAddress": VAULT,
        "cluster": {"kubeContext": "lab-a"},
        "roles": [
            {
                "name": "app",
                "serviceAccounts": ["app"],
                "namespaces": ["app"],
                "policies": ["kv-read"],
                "audience": "vault",
                "consumers": ["eso", "vso"],
            },
            {
                "name": "worker",
                "serviceAccounts": ["worker"],
                "namespaces": ["app"],
                "policies": ["kv-read"],
                "consumers": ["vso"],
            },
            {"name": "deployer", "serviceAccounts": ["deployer"], "namespaces": ["ci"], "policies": ["kv-write"]},
        ],
    }
    objects = managed_objects(stack := parse(values, "lab-a", "f"), cluster_policy_rules(stack, project / "policies"))
    assert [(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects] == [
        ("SecretStore", "app", "vaultfleet-app"),
        ("VaultConnection", "app", "vaultfleet"),  # shared by both roles in the namespace
        ("VaultAuth", "app", "vaultfleet-app"),
        ("VaultAuth", "app", "vaultfleet-worker"),
    ]
    worker = objects[3]["spec"]
    assert worker["mount"] == "k8s-lab-a" and worker["kubernetes"] == {"role": "worker", "serviceAccount": "worker"}
