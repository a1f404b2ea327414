"""CLI behaviour without servers: exit codes, messages, output formats."""

import json
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from tests.harness import edit_stack
from vaultfleet.cli import app

runner = CliRunner()


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("lab", "validate"):
        assert command in result.output


def test_validate_clean_fleet(project):
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 0, result.output
    assert "3 stack(s) valid, 0 error(s)" in result.output


def test_validate_error_names_file_and_field_and_exits_2(project):
    edit_stack(project, "lab-a", lambda c: c["vaultfleet:roles"][0].update(policy=["kv-read"]))
    result = runner.invoke(app, ["validate", "--format", "json"])
    assert result.exit_code == 2
    findings = json.loads(result.stdout)["findings"]
    assert {
        "severity": "error",
        "file": "stacks/Pulumi.lab-a.yaml",
        "field": "vaultfleet:roles[0].policy",
        "message": "unknown field",
    } in findings


def test_validate_refuses_a_second_shared_stack(project):
    # Both would write the fleet's KV mount and every cluster's mount and applier policy.
    shared = project / "stacks/Pulumi.vault.yaml"
    (project / "stacks/Pulumi.vault2.yaml").write_text(shared.read_text())
    result = runner.invoke(app, ["validate", "--format", "json"])
    assert result.exit_code == 2, result.output
    assert {
        "severity": "error",
        "file": "stacks/Pulumi.vault2.yaml",
        "field": "vaultfleet:kind",
        "message": "a second shared stack (the first: stacks/Pulumi.vault.yaml): a fleet has one",
    } in json.loads(result.stdout)["findings"]


def test_validate_warnings_fail_only_with_strict(project):
    edit_stack(project, "lab-a", lambda c: c["vaultfleet:roles"][0].pop("audience"))
    assert runner.invoke(app, ["validate"]).exit_code == 0
    result = runner.invoke(app, ["validate", "--strict"])
    assert result.exit_code == 1
    assert "accepts tokens of any audience" in result.output


def test_validate_bad_policy_template(project):
    (project / "policies/kv-read.hcl").write_text('path "x" { capabilities = ["rread"] }')
    result = runner.invoke(app, ["validate", "lab-a"])
    assert result.exit_code == 2
    assert "kv-read.hcl" in result.output and "unknown capabilities ['rread']" in result.output


def test_validate_duplicate_mount_paths(project):
    # Stack "a-b" mounts at k8s-a-b; stack "b" with prefix "k8s-a" would take the same path.
    shutil.copy(project / "stacks/Pulumi.lab-a.yaml", project / "stacks/Pulumi.a-b.yaml")
    shutil.copy(project / "stacks/Pulumi.lab-a.yaml", project / "stacks/Pulumi.b.yaml")
    edit_stack(project, "b", lambda c: c.update({"vaultfleet:mountPrefix": "k8s-a"}))
    result = runner.invoke(app, ["validate", "--format", "json"])
    findings = json.loads(result.stdout)["findings"]
    assert result.exit_code == 2
    assert any("mount path 'k8s-a-b' is also used by stack" in f["message"] for f in findings), findings


def test_validate_two_stacks_managing_one_reviewer_account(project):
    shutil.copy(project / "stacks/Pulumi.lab-a.yaml", project / "stacks/Pulumi.lab-a2.yaml")
    result = runner.invoke(app, ["validate", "--format", "json"])
    assert result.exit_code == 2
    [finding] = json.loads(result.stdout)["findings"]
    assert finding["file"] == "stacks/Pulumi.lab-a2.yaml"
    assert finding["field"] == "vaultfleet:cluster.reviewerServiceAccount"
    assert "kube-system/vault-auth is also managed by stack 'lab-a'" in finding["message"]
    # Its own reviewer account makes the second stack fine (as the benchmarks' 20 stacks on 6 clusters).
    edit_stack(
        project,
        "lab-a2",
        lambda c: c["vaultfleet:cluster"].update(reviewerServiceAccount="vault-auth-2"),
    )
    assert runner.invoke(app, ["validate"]).exit_code == 0


def test_validate_missing_stack_file(project):
    result = runner.invoke(app, ["validate", "nope"])
    assert result.exit_code == 2
    assert "no such stack file" in result.output


def test_lab_env_without_lab(tmp_path, monkeypatch):
    monkeypatch.setenv("VAULTFLEET_LAB_DIR", str(tmp_path / "none"))
    result = runner.invoke(app, ["lab", "env"])
    assert result.exit_code == 1
    assert "no lab running" in result.output


def test_lab_status_without_lab(tmp_path, monkeypatch):
    monkeypatch.setenv("VAULTFLEET_LAB_DIR", str(tmp_path / "none"))
    result = runner.invoke(app, ["lab", "status"])
    assert result.exit_code == 1


def test_lab_up_with_a_missing_tool_says_which(tmp_path, monkeypatch):
    monkeypatch.setenv("VAULTFLEET_LAB_DIR", str(tmp_path / "lab"))
    monkeypatch.setenv("VAULTFLEET_TOOLS", str(tmp_path / "no-tools"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    result = runner.invoke(app, ["lab", "up", "--clusters", "1"])
    assert result.exit_code == 2
    assert "not found" in result.output and "make tools" in result.output
    assert not (tmp_path / "lab").exists()


def test_lab_up_rejects_too_many_clusters(tmp_path, monkeypatch):
    monkeypatch.setenv("VAULTFLEET_LAB_DIR", str(tmp_path / "lab"))
    result = runner.invoke(app, ["lab", "up", "--clusters", "27"])
    assert result.exit_code == 2
    assert "between 1 and 26" in result.output


def test_shipped_example_stack_validates_once_copied(project):
    shutil.copy(project / "stacks/Pulumi.prod-eu1.yaml.example", project / "stacks/Pulumi.prod-eu1.yaml")
    result = runner.invoke(app, ["validate", "prod-eu1", "--strict"])
    assert result.exit_code == 0, result.output


def test_onboard_unknown_context_writes_nothing(project, tmp_path, monkeypatch):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({"contexts": [], "clusters": []}))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    result = runner.invoke(app, ["onboard", "prod", "--context", "missing"])
    assert result.exit_code == 2
    assert "kube context 'missing' not found" in result.output
    assert not (project / "stacks/Pulumi.prod.yaml").exists()


def test_onboard_refuses_an_invalid_name_and_writes_nothing(project, tmp_path, monkeypatch):
    import base64

    from tests.bad_inputs import certificate_pem

    ca = certificate_pem()  # a CA that parses: the schema checks caCert as X.509 (its base64 starts MIIB)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": "https://10.0.0.1:6443",
                            "certificate-authority-data": base64.b64encode(ca.encode()).decode(),
                        },
                    }
                ],
                "contexts": [{"name": "ctx", "context": {"cluster": "c"}}],
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    result = runner.invoke(app, ["onboard", "Prod_1", "--context", "ctx"])
    assert result.exit_code == 2
    assert "vaultfleet:name" in result.output
    assert not list((project / "stacks").glob("Pulumi.Prod_1.yaml"))

    result = runner.invoke(app, ["onboard", "prod-1", "--context", "ctx"])
    assert result.exit_code == 0, result.output
    text = (project / "stacks/Pulumi.prod-1.yaml").read_text()
    assert "apiHost: https://10.0.0.1:6443" in text and "MIIB" in text


@pytest.mark.parametrize("args", [["preview"], ["preview", "nope"], ["up"], ["up", "lab-a", "nope"]])
def test_fleet_commands_reject_missing_or_unknown_stacks(project, args):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output


def test_destroy_asks_first(project):
    result = runner.invoke(app, ["destroy", "lab-a"], input="n\n")
    assert result.exit_code == 1
    assert "destroy lab-a?" in result.output


def test_access_formats(project):
    rows = json.loads(runner.invoke(app, ["access", "--format", "json"]).stdout)
    assert {
        "cluster": "lab-a",
        "mount": "k8s-lab-a",
        "namespace": "app",
        "service_account": "app",
        "role": "app",
        "policy": "k8s-lab-a-kv-read",
        "path": "kv/data/clusters/lab-a/*",
        "capabilities": ["read"],
        "login": "reviewer-token",
    } in rows
    markdown = runner.invoke(app, ["access", "lab-b", "--format", "markdown"]).stdout
    assert "| lab-b | ci | deployer | deployer | k8s-lab-b-kv-write | `kv/data/clusters/lab-b/*` |" in markdown
    assert "lab-a" not in markdown


def test_verify_rejects_the_shared_stack(project):
    result = runner.invoke(app, ["verify", "vault"])
    assert result.exit_code == 2
    assert "shared stack" in result.output


# --- the database engine through validate and access ----------------------------------------------

CREATE_WITH_EXPIRY = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"


def declare_database(project, password, creation=CREATE_WITH_EXPIRY, cluster_roles=("app-readonly",)):
    """The shared stack declares an engine; lab-a grants its app role db-creds for `cluster_roles`."""
    edit_stack(
        project,
        "vault",
        lambda c: c.update(
            {
                "vaultfleet:database": {
                    "connections": [
                        {
                            "name": "app-db",
                            "connectionUrl": "postgresql://{{username}}:{{password}}@db:5432/app",
                            "username": "vault",
                            "password": password,
                        }
                    ],
                    "roles": [{"name": "app-readonly", "connection": "app-db", "creationStatements": [creation]}],
                }
            }
        ),
    )

    def grant(config):
        config["vaultfleet:policies"] = ["kv-read", "kv-write", "db-creds"]
        config["vaultfleet:databaseRoles"] = list(cluster_roles)
        config["vaultfleet:roles"][0]["policies"] = ["kv-read", "db-creds"]

    edit_stack(project, "lab-a", grant)


def test_validate_accepts_an_encrypted_database_password(project):
    declare_database(project, {"secure": "v1:bm90LXJlYWxseQ==:v1:Y2lwaGVydGV4dA=="})
    result = runner.invoke(app, ["validate", "--strict"])
    assert result.exit_code == 0, result.output
    assert "3 stack(s) valid, 0 error(s)" in result.output


def test_validate_refuses_a_plaintext_database_password(project):
    declare_database(project, "hunter2-plaintext")
    result = runner.invoke(app, ["validate", "--format", "json"])
    assert result.exit_code == 2
    findings = json.loads(result.stdout)["findings"]
    assert any(
        f["file"] == "stacks/Pulumi.vault.yaml"
        and f["field"] == "vaultfleet:database.connections[0].password"
        and "must be a Pulumi secret" in f["message"]
        for f in findings
    ), findings
    assert "hunter2-plaintext" not in result.stdout


def test_validate_warns_about_users_without_expiry_and_undeclared_database_roles(project):
    declare_database(
        project,
        {"secure": "v1:x"},
        creation="CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';",
        cluster_roles=("app-readonly", "reporting"),
    )
    result = runner.invoke(app, ["validate", "--strict", "--format", "json"])
    assert result.exit_code == 1, result.output
    warnings = {(f["file"], f["field"]) for f in json.loads(result.stdout)["findings"] if f["severity"] == "warning"}
    assert ("stacks/Pulumi.vault.yaml", "vaultfleet:database.roles[0].creationStatements") in warnings
    assert ("stacks/Pulumi.lab-a.yaml", "vaultfleet:databaseRoles[1]") in warnings


def test_access_shows_the_database_creds_a_role_may_read(project):
    declare_database(project, {"secure": "v1:x"})
    rows = json.loads(runner.invoke(app, ["access", "lab-a", "--format", "json"]).stdout)
    creds = [(r["role"], r["path"], r["capabilities"]) for r in rows if r["policy"] == "k8s-lab-a-db-creds"]
    assert ("app", "database/creds/app-readonly", ["read"]) in creds
    assert ("app", "sys/leases/renew", ["update"]) in creds
    assert not [r for r in rows if r["role"] == "deployer" and r["path"].startswith("database/")]


def test_access_table_fits_an_80_column_terminal_without_cutting_anything(project, monkeypatch):
    from vaultfleet.cli import common

    monkeypatch.setattr(common.out, "width", 80)
    result = runner.invoke(app, ["access"])
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    assert all(len(line) <= 80 for line in result.stdout.splitlines())
    # Every policy and path is there whole (a folded path is whole once its lines are joined).
    joined = "".join(line.strip() for line in result.stdout.splitlines())
    for grant in json.loads(runner.invoke(app, ["access", "--format", "json"]).stdout):
        assert grant["policy"] in result.stdout
        assert grant["path"] in joined
