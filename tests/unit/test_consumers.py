"""`vaultfleet consumers`: each consumer's fields, spelled the way that consumer wants them."""

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import add_team_role, edit_stack
from vaultfleet.cli import app

runner = CliRunner()
VAULT = "http://127.0.0.1:18200"  # Pulumi.yaml's fleet-wide vaultAddress


def consumers(*args) -> list[dict]:
    result = runner.invoke(app, ["consumers", *args])
    assert result.exit_code == 0, result.output
    return [d for d in yaml.safe_load_all(result.stdout) if d is not None]


def by_kind(documents: list[dict]) -> dict[str, dict]:
    return {d["kind"]: d for d in documents}


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


DB_URL = "postgresql://{{username}}:{{password}}@db.internal:6432/shop?sslmode=verify-full"
CREDS = "database/creds/app-readonly"
# What every consumer's URL must be: the connection's host, port, database and parameters.
SERVER = "@db.internal:6432/shop?sslmode=verify-full"


def add_database(project: Path, mount: str | None = None) -> None:
    """The shared stack's engine (two connections, two roles) and lab-a role `orders` reading app-readonly."""
    edit_stack(
        project,
        "vault",
        lambda c: c.update(
            {
                "vaultfleet:database": {
                    "connections": [
                        {
                            "name": "other",
                            "connectionUrl": "postgresql://{{username}}:{{password}}@elsewhere:5432/x",
                            "username": "vault",
                            "password": {"secure": "v1:x"},
                        },
                        {
                            "name": "shop-db",
                            "connectionUrl": DB_URL,
                            "username": "vault",
                            "password": {"secure": "v1:y"},
                        },
                    ],
                    "roles": [
                        {
                            "name": "reporting",
                            "connection": "other",
                            "creationStatements": [
                                "CREATE ROLE \"{{name}}\" PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"
                            ],
                        },
                        {
                            "name": "app-readonly",
                            "connection": "shop-db",
                            "defaultTtl": "10m",
                            "maxTtl": "1h",
                            "creationStatements": [
                                "CREATE ROLE \"{{name}}\" PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"
                            ],
                        },
                    ],
                }
            }
        ),
    )

    def grant(config):
        config["vaultfleet:policies"] = ["kv-read", "kv-write", "db-creds"]
        config["vaultfleet:databaseRoles"] = ["app-readonly"]
        config["vaultfleet:roles"].append(
            {
                "name": "orders",
                "serviceAccounts": ["orders"],
                "namespaces": ["shop"],
                "policies": ["kv-read", "db-creds"],
                "audience": "vault",
            }
        )

    edit_stack(project, "lab-a", grant)
    if mount:
        pulumi_yaml = yaml.safe_load((project / "Pulumi.yaml").read_text())
        pulumi_yaml["config"]["vaultfleet:databaseMount"]["value"] = mount
        (project / "Pulumi.yaml").write_text(yaml.safe_dump(pulumi_yaml))


def test_injector_gets_the_credentials_as_a_url_to_the_connection_the_role_uses(project):
    add_database(project)
    (patch,) = consumers("lab-a", "--kind", "injector", "--role", "orders")
    annotations = patch["spec"]["template"]["metadata"]["annotations"]
    assert annotations["vault.hashicorp.com/agent-inject-secret-db-app-readonly"] == CREDS
    assert annotations["vault.hashicorp.com/agent-inject-template-db-app-readonly"] == (
        f'{{{{ with secret "{CREDS}" -}}}}\n'
        "postgresql://{{ .Data.username | urlquery }}:{{ .Data.password | urlquery }}" + SERVER + "\n"
        "{{- end }}\n"
    )
    # The role reads KV too: both files, one agent.
    assert annotations["vault.hashicorp.com/agent-inject-secret-config"] == "kv/data/clusters/lab-a/config"
    # Revoking the sidecar's token on shutdown revokes the credentials' lease with it.
    assert annotations["vault.hashicorp.com/agent-revoke-on-shutdown"] == "true"
    assert annotations["vault.hashicorp.com/role"] == "orders"
    assert patch["spec"]["template"]["spec"]["serviceAccountName"] == "orders"


def test_roles_without_database_credentials_do_not_revoke_on_shutdown(project):
    add_database(project)
    (patch,) = consumers("lab-a", "--kind", "injector", "--role", "app")
    annotations = patch["spec"]["template"]["metadata"]["annotations"]
    assert "vault.hashicorp.com/agent-revoke-on-shutdown" not in annotations
    assert not [a for a in annotations if "db-" in a]


def test_agent_renders_the_same_url(project):
    add_database(project)
    result = runner.invoke(app, ["consumers", "lab-a", "--kind", "agent", "--role", "orders"])
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout)
    templates = {t["destination"]: t["contents"] for t in config["template"]}
    assert set(templates) == {"/vault/secrets/config", "/vault/secrets/db-app-readonly"}
    assert templates["/vault/secrets/db-app-readonly"].splitlines()[1] == (
        "postgresql://{{ .Data.username | urlquery }}:{{ .Data.password | urlquery }}" + SERVER
    )
    assert config["auto_auth"]["method"][0]["config"]["role"] == "orders"
    # What it reads and where it connects, said on stderr beside the JSON.
    assert (
        f"dynamic PostgreSQL credentials at {CREDS} (connection shop-db: db.internal:6432/shop), "
        "lease 600s, renewable up to 3600s"
    ) in result.stderr


def test_eso_runs_a_vault_dynamic_secret_generator(project):
    add_database(project)
    documents = consumers("lab-a", "--kind", "eso", "--role", "orders")
    assert [(d["kind"], d["metadata"]["name"]) for d in documents] == [
        ("SecretStore", "vaultfleet-orders"),
        ("ExternalSecret", "config"),
        ("VaultDynamicSecret", "db-app-readonly"),
        ("ExternalSecret", "db-app-readonly"),
    ]
    generator, external = documents[2], documents[3]
    assert generator["apiVersion"] == "generators.external-secrets.io/v1alpha1"
    assert generator["metadata"] == {"name": "db-app-readonly", "namespace": "shop"}
    assert generator["spec"] == {
        "path": CREDS,
        "method": "GET",
        "resultType": "Data",
        "provider": {
            "server": VAULT,
            "auth": {
                "kubernetes": {
                    "mountPath": "k8s-lab-a",
                    "role": "orders",
                    "serviceAccountRef": {"name": "orders", "audiences": ["vault"]},
                }
            },
        },
    }
    assert external["apiVersion"] == "external-secrets.io/v1"
    assert external["metadata"] == {"name": "db-app-readonly", "namespace": "shop"}
    assert external["spec"]["dataFrom"] == [
        {
            "sourceRef": {
                "generatorRef": {
                    "apiVersion": "generators.external-secrets.io/v1alpha1",
                    "kind": "VaultDynamicSecret",
                    "name": "db-app-readonly",
                }
            }
        }
    ]
    assert "secretStoreRef" not in external["spec"]  # the generator logs in itself
    # Nothing renews the lease (10m): new credentials at half of it.
    assert external["spec"]["refreshInterval"] == "300s"
    assert external["spec"]["target"] == {
        "name": "db-app-readonly",
        "template": {
            "engineVersion": "v2",
            "mergePolicy": "Merge",
            "data": {"url": "postgresql://{{ .username | urlquery }}:{{ .password | urlquery }}" + SERVER},
        },
    }


def test_eso_cluster_store_leaves_the_generator_in_the_namespace(project):
    add_database(project)
    documents = by_kind(consumers("lab-a", "--kind", "eso", "--role", "orders", "--cluster-store"))
    assert "ClusterSecretStore" in documents
    generator = documents["VaultDynamicSecret"]
    assert generator["metadata"]["namespace"] == "shop"
    # A namespaced generator's ServiceAccount is in its own namespace: none named.
    assert generator["spec"]["provider"]["auth"]["kubernetes"]["serviceAccountRef"] == {
        "name": "orders",
        "audiences": ["vault"],
    }


def test_vso_vault_dynamic_secret_mount_and_path_apart(project):
    add_database(project)
    documents = consumers("lab-a", "--kind", "vso", "--role", "orders")
    assert [d["kind"] for d in documents] == ["VaultConnection", "VaultAuth", "VaultStaticSecret", "VaultDynamicSecret"]
    dynamic = documents[3]
    assert dynamic["apiVersion"] == "secrets.hashicorp.com/v1beta1"
    assert dynamic["metadata"] == {"name": "db-app-readonly", "namespace": "shop"}
    assert dynamic["spec"] == {
        "vaultAuthRef": "vaultfleet-orders",
        "mount": "database",
        "path": "creds/app-readonly",
        "revoke": True,
        "destination": {
            "name": "db-app-readonly",
            "create": True,
            "transformation": {
                "templates": {
                    "url": {
                        "text": 'postgresql://{{ get .Secrets "username" | urlquery }}:{{ get .Secrets "password" | urlquery }}'
                        + SERVER,
                    }
                }
            },
        },
    }
    assert documents[1]["metadata"]["name"] == "vaultfleet-orders"


def test_database_mount_from_pulumi_yaml_reaches_every_consumer(project):
    add_database(project, mount="pg")
    annotations = consumers("lab-a", "--kind", "injector", "--role", "orders")[0]["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert annotations["vault.hashicorp.com/agent-inject-secret-db-app-readonly"] == "pg/creds/app-readonly"
    eso = by_kind(consumers("lab-a", "--kind", "eso", "--role", "orders"))["VaultDynamicSecret"]
    assert eso["spec"]["path"] == "pg/creds/app-readonly"
    vso = by_kind(consumers("lab-a", "--kind", "vso", "--role", "orders"))["VaultDynamicSecret"]
    assert (vso["spec"]["mount"], vso["spec"]["path"]) == ("pg", "creds/app-readonly")


@pytest.mark.parametrize(
    ("url", "server"),
    [
        ("postgresql://{{username}}:{{password}}@db:5432/app", "@db:5432/app"),
        ("postgres://{{username}}:{{password}}@db", "@db"),  # libpq defaults: port 5432, database = user
        (
            "postgresql://{{username}}:{{password}}@[::1]:5432/app?sslmode=require&connect_timeout=5",
            "@[::1]:5432/app?sslmode=require&connect_timeout=5",
        ),
        ("postgresql://{{username}}:{{password}}@h1:5432,h2:5433/app", "@h1:5432,h2:5433/app"),
    ],
)
def test_url_keeps_the_connection_s_server_part_as_written(url, server):
    from vaultfleet.consumers.database import PostgresTarget

    assert (
        PostgresTarget.from_connection_url(url).url("u", "p")
        == "postgresql://{{ u | urlquery }}:{{ p | urlquery }}" + server
    )


def test_kv_only_roles_never_read_the_shared_stack(project):
    # A shared stack with a plaintext password is invalid; consumers of KV do not depend on it.
    add_database(project)
    edit_stack(project, "vault", lambda c: c["vaultfleet:database"]["connections"][0].update(password="plain"))
    assert consumers("lab-a", "--kind", "eso", "--role", "app")
    result = runner.invoke(app, ["consumers", "lab-a", "--kind", "eso", "--role", "orders"])
    assert result.exit_code == 2
    assert (
        "stacks/Pulumi.vault.yaml: vaultfleet:database.connections[0].password: must be a Pulumi secret"
        in result.output
    )


def _no_engine(project):
    edit_stack(project, "vault", lambda c: c.pop("vaultfleet:database"))


def _undeclared_role(project):
    edit_stack(project, "vault", lambda c: c["vaultfleet:database"]["roles"].pop())


def _no_shared_stack(project):
    (project / "stacks" / "Pulumi.vault.yaml").unlink()


def _mount_differs(project):
    edit_stack(project, "lab-a", lambda c: c.update({"vaultfleet:databaseMount": "pg"}))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            _no_engine,
            "stacks/Pulumi.vault.yaml: vaultfleet:database: not declared, but stacks/Pulumi.lab-a.yaml reads "
            "database/creds/app-readonly (vaultfleet:databaseRoles)",
        ),
        (
            _undeclared_role,
            "stacks/Pulumi.vault.yaml: vaultfleet:database.roles: no role 'app-readonly', which "
            "stacks/Pulumi.lab-a.yaml reads (vaultfleet:databaseRoles); declared: reporting",
        ),
        (
            _no_shared_stack,
            "stacks/Pulumi.lab-a.yaml: vaultfleet:databaseRoles: lab-a reads database/creds/app-readonly, "
            "but no shared stack (vaultfleet:kind: shared) in stacks/ declares the database engine",
        ),
        (
            _mount_differs,
            "stacks/Pulumi.vault.yaml: vaultfleet:databaseMount: the engine is mounted at 'database' but "
            "stacks/Pulumi.lab-a.yaml reads it at 'pg'",
        ),
    ],
    ids=["no-engine", "undeclared-role", "no-shared-stack", "mount-differs"],
)
def test_credentials_the_shared_stack_cannot_back_exit_2(project, change, message):
    add_database(project)
    change(project)
    for kind in ("injector", "eso", "vso", "agent"):
        result = runner.invoke(app, ["consumers", "lab-a", "--kind", kind, "--role", "orders"])
        assert result.exit_code == 2, (kind, result.output)
        assert message in " ".join(result.output.split()), (kind, result.output)
        assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--kind", "eso"], "no such stack file"),
        (["vault", "--kind", "eso"], "vault is the shared stack"),
        (["lab-a", "--kind", "eso", "--role", "nope"], "no role 'nope' in lab-a (roles: app, deployer)"),
        (
            ["lab-a", "--kind", "vso", "--role", "app", "--namespace", "other"],
            "role 'app' does not bind namespace 'other' (it binds: app)",
        ),
        (
            ["lab-a", "--kind", "vso", "--role", "app", "--service-account", "x"],
            "role 'app' does not bind ServiceAccount 'x'",
        ),
        (["lab-a", "--kind", "agent"], "an agent config logs in as one ServiceAccount"),
        (["lab-a", "--kind", "agent", "--role", "app", "--format", "yaml"], "Vault Agent reads HCL or JSON, not YAML"),
        (["lab-a", "--kind", "eso", "--secret", "Bad/Name"], "--secret 'Bad/Name' must be a lowercase DNS label"),
        (["lab-a", "--kind", "eso", "--namespace", "*"], "--namespace '*' is not a Kubernetes name"),
    ],
)
def test_errors_exit_2_with_a_clear_message(project, args, message):
    result = runner.invoke(app, ["consumers", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.stdout == ""  # nothing half-written to stdout


def test_wildcard_role_named_without_namespace_exits_2(project):
    edit_stack(project, "lab-a", add_team_role)
    result = runner.invoke(app, ["consumers", "lab-a", "--kind", "eso", "--role", "team"])
    assert result.exit_code == 2
    assert "binds every namespace ('*'): say which with --namespace" in result.output


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
    from vaultfleet.consumers.managed import managed_objects
    from vaultfleet.project.schema import parse

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
    objects = managed_objects(parse(values, "lab-a", "f"), project / "policies")
    assert [(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects] == [
        ("SecretStore", "app", "vaultfleet-app"),
        ("VaultConnection", "app", "vaultfleet"),  # shared by both roles in the namespace
        ("VaultAuth", "app", "vaultfleet-app"),
        ("VaultAuth", "app", "vaultfleet-worker"),
    ]
    worker = objects[3]["spec"]
    assert worker["mount"] == "k8s-lab-a" and worker["kubernetes"] == {"role": "worker", "serviceAccount": "worker"}
