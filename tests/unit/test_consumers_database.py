"""`vaultfleet consumers` for dynamic PostgreSQL credentials: each consumer reads database/creds/<role>
and renders a URL to the connection that role uses."""

import json

import pytest

from tests.harness import VAULT, add_database, by_kind, consumers, runner
from vaultfleet.cli import app

CREDS = "database/creds/app-readonly"
# What every consumer's URL must be: the connection's host, port, database and parameters.
SERVER = "@db.internal:6432/shop?sslmode=verify-full"


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
