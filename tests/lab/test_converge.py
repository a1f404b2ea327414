"""Converge by default, and a preview skip that cannot say "no changes" wrongly (issue 13).

One stack (lab-a) brought up once; each test changes one thing out of band and checks what
`vaultfleet preview`/`up` (and plain `pulumi`) make of it.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from typer.testing import CliRunner

from tests.harness import copy_project, destroy_stacks, root_client, use_lab_for_cli, vault_token
from vaultfleet.cli import app

# Server-dependent: drift is what the provider reads back from the server, and the token check asks it.
pytestmark = [pytest.mark.lab, pytest.mark.server, pytest.mark.usefixtures("lab_cli")]
runner = CliRunner()


@pytest.fixture(scope="module")
def project(lab, lab_env, tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("converge"))
    with pytest.MonkeyPatch.context() as mp:
        use_lab_for_cli(mp, project, lab_env)
        result = runner.invoke(app, ["up", "vault", "lab-a"])  # the shared stack makes lab-a's mount
        assert result.exit_code == 0, result.output
    yield project
    destroy_stacks(project, lab_env, ["lab-a", "vault"])


def pulumi(project, lab_env, *args: str) -> subprocess.CompletedProcess:
    """Plain `pulumi` in the project, as a user in a `lab env` shell runs it."""
    return subprocess.run(
        ["pulumi", *args, "--stack", "lab-a", "--non-interactive", "--color", "never"],
        cwd=project,
        env=lab_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def preview_json(*args: str) -> dict:
    result = runner.invoke(app, ["preview", "lab-a", "--format", "json", *args])
    assert result.exit_code in (0, 3), result.output
    (stack,) = json.loads(result.stdout)
    return stack


def set_role_policies(lab, policies: list[str]) -> None:
    root_client(lab).auth.kubernetes.create_role(
        "app",
        bound_service_account_names=["app"],
        bound_service_account_namespaces=["app"],
        policies=policies,
        audience="vault",
        ttl=3600,
        max_ttl=14400,
        mount_point="k8s-lab-a",
    )


def role_policies(lab) -> list[str]:
    return root_client(lab).auth.kubernetes.read_role("app", mount_point="k8s-lab-a")["token_policies"]


def test_1_preview_marks_drift_and_the_default_up_puts_it_back(lab):
    set_role_policies(lab, ["root"])
    stack = preview_json()
    drifted = [s for s in stack["steps"] if s.get("drift")]
    assert [s["name"] for s in drifted] == ["lab-a-roles-app"], stack
    assert stack["ok"] and stack["changed"]
    result = runner.invoke(app, ["up", "lab-a"])  # no --refresh: converging is the default
    assert result.exit_code == 0, result.output
    assert role_policies(lab) == ["k8s-lab-a-kv-read"]


def test_2_plain_pulumi_up_puts_drift_back_too(lab, project, lab_env):
    set_role_policies(lab, ["root"])
    done = pulumi(project, lab_env, "up", "--yes", "--skip-preview")
    assert done.returncode == 0, done.stdout + done.stderr
    assert role_policies(lab) == ["k8s-lab-a-kv-read"]


def test_3_no_refresh_preview_skips_only_a_stack_exactly_as_the_last_up_left_it(lab, project, lab_env):
    assert runner.invoke(app, ["up", "lab-a"]).exit_code == 0
    assert preview_json("--no-refresh")["unchanged"], "the stack is exactly as the up left it"
    # A state edit that leaves no history entry: the engine must run, and show the role to create.
    state = json.loads(pulumi(project, lab_env, "stack", "export").stdout)
    role = next(r["urn"] for r in state["deployment"]["resources"] if r["urn"].endswith("::lab-a-roles-app"))
    deleted = pulumi(project, lab_env, "state", "delete", role, "--yes")
    assert deleted.returncode == 0, deleted.stderr
    stack = preview_json("--no-refresh")
    assert stack["unchanged"] is None
    assert {"op": "create", "name": "lab-a-roles-app"}.items() <= next(
        s for s in stack["steps"] if s["name"] == "lab-a-roles-app"
    ).items(), stack
    # Put it back (the role exists in Vault: up with refresh adopts nothing, it creates over it).
    assert runner.invoke(app, ["up", "lab-a"]).exit_code == 0, "up repairs the state edit"


def test_4_a_token_vault_no_longer_accepts_fails_the_stack_instead_of_ok(lab, monkeypatch):
    assert runner.invoke(app, ["up", "lab-a"]).exit_code == 0
    with vault_token(root_client(lab), ["default"], "10m") as token:
        pass  # revoked when the block ends
    monkeypatch.setenv("VAULT_TOKEN", token)
    result = runner.invoke(app, ["preview", "lab-a", "--no-refresh"])
    assert result.exit_code == 1, result.output
    assert "refused the token" in result.output
