"""Dangerous steps (issue 28, docs/dangerous-steps.md): a cluster's mount path changed in its stack
file, which would disable the old mount and revoke every token it issued. `preview` marks the step
in every format; `up` refuses it unless the run names the stack, and writes nothing (the mount and a
workload's token as they were); a plain `pulumi up` is stopped by `protect`; `up --allow-dangerous
vault` applies it.

Server-dependent (`server`, both runs): the refusal is decided from a preview that reads the
server, and what a move revokes is the server's doing. Its own project copy: the shared stack and
lab-a, up once for the module (test_1 only looks; test_2, the allowed move, comes last).
"""

from __future__ import annotations

import json

import hvac
import pytest
from pulumi import automation as auto
from typer.testing import CliRunner

from tests.harness import copy_project, destroy_stacks, edit_stack, login, plain_stack_export, root_client, up_stacks
from tests.lab.refusals import refused
from vaultfleet.cli import app
from vaultfleet.fleet.engine import pulumi_command

pytestmark = [pytest.mark.lab, pytest.mark.server, pytest.mark.usefixtures("lab_cli")]
runner = CliRunner()
CLUSTER, OLD, NEW = "lab-a", "k8s-lab-a", "k8s-lab-a-moved"
STEP = "fleet-cluster-lab-a-auth-backend"  # the shared stack's AuthBackend of lab-a
REASON = f"replaces auth mount {OLD} with {NEW} (the old one is removed): every token and lease it issued is revoked"
SECRET = "clusters/lab-a/db"


@pytest.fixture(scope="module")
def project(lab, lab_env, tmp_path_factory):
    """The shared stack and lab-a up, a workload of lab-a logged in (its token kept), then lab-a's
    stack file moved to a new mount path: what `up` is about to do is dangerous."""
    project = copy_project(tmp_path_factory.mktemp("dangerous"))
    (project / "stacks" / "Pulumi.lab-b.yaml").unlink()
    up_stacks(project, lab_env, ["vault", CLUSTER])
    try:
        yield project
    finally:
        destroy_stacks(project, lab_env, [CLUSTER, "vault"])


@pytest.fixture(scope="module")
def workload(project, lab) -> hvac.Client:
    """app/app of lab-a logged in at the old mount, with a secret its policy reads; then the move asked for."""
    root_client(lab).secrets.kv.v2.create_or_update_secret(SECRET, secret={"password": "pw"}, mount_point="kv")
    client = login(lab, CLUSTER)
    edit_stack(project, CLUSTER, lambda c: c["vaultfleet:cluster"].update(mountPath=NEW))
    return client


def cli(*args: str):
    return runner.invoke(app, list(args))


def mounts(lab) -> dict:
    return root_client(lab).sys.list_auth_methods()["data"]


def still_works(client: hvac.Client) -> None:
    """The token is live and reads what its policy allows."""
    assert client.lookup_token()["data"]["path"].startswith(f"auth/{OLD}/login")
    read = client.secrets.kv.v2.read_secret_version(SECRET, mount_point="kv", raise_on_deleted_version=True)
    assert read["data"]["data"] == {"password": "pw"}


def test_1_preview_marks_the_move_and_up_refuses_it_without_the_flag(project, lab, lab_env, workload):
    still_works(workload)  # positive control: token and read work before anything runs
    accessor = mounts(lab)[f"{OLD}/"]["accessor"]
    state = plain_stack_export(project, "vault", lab_env)

    text = cli("preview", "vault")
    assert text.exit_code == 0, text.output
    print(text.stdout)
    line = next(ln for ln in text.stdout.splitlines() if STEP in ln and ln.strip().startswith("replace "))
    assert f"DANGEROUS: {REASON}" in line, text.stdout
    assert "1 dangerous step: `vaultfleet up` refuses them unless run with `--allow-dangerous vault`" in text.stdout
    # The other formats from the same plan, without the refresh (the cheaper engine run).
    markdown = cli("preview", "vault", "--no-refresh", "--format", "markdown")
    assert markdown.exit_code == 0, markdown.output
    print(markdown.stdout)
    assert f"`replace` AuthBackend `{STEP}` :warning: **dangerous**: {REASON}" in markdown.stdout
    assert ":warning: **vault**: 1 dangerous step" in markdown.stdout
    as_json = cli("preview", "vault", "--no-refresh", "--format", "json")
    assert as_json.exit_code == 0, as_json.output
    (entry,) = json.loads(as_json.stdout)
    assert [(s["op"], s["name"], s["danger"]) for s in entry["steps"] if s["danger"]] == [("replace", STEP, REASON)]

    up = cli("up", "vault", "--format", "json")
    assert up.exit_code == 1, up.output
    (result,) = json.loads(up.stdout)
    assert result["error"].startswith("refused: stack vault would take 1 dangerous step, nothing was written")
    assert result["refused"] == [
        {"op": "replace", "type": "vault:index/authBackend:AuthBackend", "name": STEP, "danger": REASON}
    ]
    assert "`vaultfleet up vault --allow-dangerous vault`" in result["error"]

    # A plain `pulumi up` (refresh, preview, then update) is stopped by `protect` before any write.
    message = refused(
        lambda: pulumi_command().run(["up", "--yes", "--stack", "vault"], str(project), lab_env),
        "marked for protection",
        auto.CommandError,
    )
    assert STEP in message

    # Nothing written: the state, the mount and the workload's token as they were.
    assert plain_stack_export(project, "vault", lab_env) == state
    assert mounts(lab)[f"{OLD}/"]["accessor"] == accessor and f"{NEW}/" not in mounts(lab)
    still_works(workload)


def test_2_up_with_the_flag_moves_the_mount(project, lab, lab_env, workload):
    up = cli("up", "vault", "--allow-dangerous", "vault")
    assert up.exit_code == 0, up.output
    print(up.stdout)
    assert f"DANGEROUS: {REASON}" in up.stdout and "1 dangerous step applied (--allow-dangerous vault)" in up.stdout
    assert f"{NEW}/" in mounts(lab) and f"{OLD}/" not in mounts(lab)
    # What the flag let through was real: the old mount's token is revoked with it.
    refused(workload.lookup_token, "permission denied|invalid token", hvac.exceptions.VaultError)
    # The new mount is protected in the state like the old one was.
    deployment = json.loads(plain_stack_export(project, "vault", lab_env))["deployment"]
    (mount,) = [r for r in deployment["resources"] if r["urn"].endswith(f"::{STEP}")]
    assert mount["inputs"]["path"] == NEW and mount.get("protect") is True
