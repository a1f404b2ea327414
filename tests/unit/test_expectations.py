"""Access expectations (access/*.yaml) checked offline by `validate`: each names the policy and path
rule that decides it; bad input names the file and field (docs/access-review.md)."""

from __future__ import annotations

import shutil

import pytest
import yaml
from typer.testing import CliRunner

from tests.harness import REPO, edit_stack
from vaultfleet.cli import app
from vaultfleet.stackfile import Project
from vaultfleet.validate import validate

runner = CliRunner()


@pytest.fixture()
def fleet(project):
    """The project copy with the repository's own expectations (access/lab.yaml)."""
    shutil.copytree(REPO / "access", project / "access")
    return project


def expect(project, *expectations: dict) -> None:
    (project / "access" / "more.yaml").write_text(yaml.safe_dump({"expectations": list(expectations)}))


def findings(project):
    return [f for f in validate(Project(project), expectations=True)[0] if f.file.startswith("access/")]


def test_the_lab_fleets_expectations_hold_offline(fleet):
    assert findings(fleet) == []
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 0, result.output


def test_a_failing_expectation_names_the_policy_and_rule_that_decide_it(fleet):
    expect(fleet, {"cluster": "lab-a", "role": "app", "path": "kv/data/clusters/lab-a/config", "cannot": ["read"]})
    (error,) = findings(fleet)
    assert (error.severity, error.file, error.field) == ("error", "access/more.yaml", "expectations[0]")
    assert error.message == (
        "FAIL: lab-a role app cannot read kv/data/clusters/lab-a/config: has read; "
        'decided by k8s-lab-a-kv-read: path "kv/data/clusters/lab-a/*"'
    )
    result = runner.invoke(app, ["validate"])
    assert result.exit_code != 0 and "access/more.yaml" in result.output


def test_a_can_that_no_rule_grants_says_so(fleet):
    expect(fleet, {"cluster": "lab-b", "role": "app", "path": "kv/data/clusters/lab-a/config", "can": ["read"]})
    (error,) = findings(fleet)
    assert error.message.endswith("has nothing; no rule of the role's policies matches the path")


def test_a_role_with_a_policy_whose_body_is_in_vault_is_left_to_verify(fleet):
    edit_stack(fleet, "lab-a", lambda c: c["vaultfleet:roles"][0].update(existingPolicies=["team-read"]))
    (warning,) = [f for f in findings(fleet) if f.field == "expectations[1]"]
    assert warning.severity == "warning" and "team-read, whose bodies are Vault's: verify checks it live" in (
        warning.message
    )


@pytest.mark.parametrize(
    ("entry", "field", "message"),
    [
        ({"cluster": "lab-a", "role": "nobody", "path": "kv/x", "can": ["read"]}, "expectations[0].role", "no role"),
        ({"cluster": "lab-z", "role": "app", "path": "kv/x", "can": ["read"]}, "expectations[0].cluster", "lab-z"),
        ({"cluster": "lab-a", "role": "app", "path": "kv/*", "can": ["read"]}, "expectations[0].path", "one request"),
        ({"cluster": "lab-a", "role": "app", "path": "kv/x", "can": ["reed"]}, "expectations[0].can[0]", "'read'"),
        ({"cluster": "lab-a", "role": "app", "path": "kv/x"}, "expectations[0]", "`can` or `cannot`"),
        ({"cluster": "lab-a", "role": "app", "path": "kv/x", "can": ["read"], "as": "x"}, "expectations[0].as", ""),
    ],
)
def test_bad_input_names_the_file_and_field(project, entry, field, message):
    (project / "access").mkdir()
    expect(project, entry)
    (error,) = findings(project)
    assert (error.severity, error.file, error.field) == ("error", "access/more.yaml", field)
    assert message in error.message


def test_a_templated_path_is_filled_in_for_the_roles_login(project):
    (project / "access").mkdir()

    def namespaced(config):
        config["vaultfleet:policies"] = [*config.get("vaultfleet:policies", ["kv-read", "kv-write"]), "kv-namespace"]
        config["vaultfleet:roles"][0]["policies"] = ["kv-namespace"]

    edit_stack(project, "lab-a", namespaced)
    own, other = "kv/data/clusters/lab-a/namespaces/app/db", "kv/data/clusters/lab-a/namespaces/web/db"
    expect(
        project,
        {"cluster": "lab-a", "role": "app", "path": own, "can": ["read"]},
        {"cluster": "lab-a", "role": "app", "path": other, "cannot": ["read"]},
    )
    assert findings(project) == []


def test_a_cannot_holds_for_every_serviceaccount_the_role_takes_in(fleet):
    # A template keyed by the login's namespace, bound to every namespace: a namespace named like
    # another cluster reads that cluster's secrets. The login's own namespace (`app`) cannot.
    (fleet / "policies" / "kv-team.hcl").write_text(
        'path "${kv_mount}/data/clusters/'
        '{{identity.entity.aliases.${mount_accessor}.metadata.service_account_namespace}}/*" {\n'
        '  capabilities = ["read"]\n}\n'
    )

    def team(config):
        config["vaultfleet:policies"] = ["kv-read", "kv-write", "kv-team"]
        config["vaultfleet:roles"].append(
            {
                "name": "team",
                "serviceAccounts": ["app"],
                "namespaces": ["*"],
                "policies": ["kv-team"],
                "audience": "vault",
            }
        )

    edit_stack(fleet, "lab-a", team)
    expect(fleet, {"cluster": "lab-a", "role": "team", "path": "kv/data/clusters/lab-b/config", "cannot": ["read"]})
    (error,) = findings(fleet)
    assert error.severity == "error", error
    assert error.message.startswith("FAIL: lab-a role team cannot read kv/data/clusters/lab-b/config: has read;")
    assert error.message.endswith("(as lab-b/app, whom the role takes in)")
