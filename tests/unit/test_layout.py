"""The per-cluster layout (docs/fleet-layout.md): each cluster's access in its own privileged stack
vault.<cluster>, so a one-cluster change runs nothing that grows with the fleet. The program under
Pulumi's mocks, selection, stages and shards, the preview skip's inputs; the lab runs the same
against real servers (tests/lab/test_layout.py)."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.harness import Mocks, commit_all, copy_project_files, edit_stack, git, set_cluster_access
from tests.unit.test_pipeline import PIPELINE, pin_endpoints
from tests.unit.test_program import run_program
from vaultfleet.fleet import runner
from vaultfleet.fleet.changes import changed_since
from vaultfleet.fleet.inputs import inputs_fingerprint
from vaultfleet.fleet.shards import Shard
from vaultfleet.stackfile import Project

ACCESS_TYPES = {"vault:index/authBackend:AuthBackend", "vault:index/policy:Policy"}


@pytest.fixture()
def fleet(tmp_path, monkeypatch):
    """The project copy of test_program's `fleet`, in the per-cluster layout."""
    root = copy_project_files(tmp_path, program=True)
    pin_endpoints(root)
    set_cluster_access(root, "per-cluster")
    monkeypatch.chdir(root)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    return root


def test_an_access_stack_writes_its_clusters_mount_policies_applier_and_preview_grants(fleet):
    mocks = run_program(fleet, "vault.lab-a")
    (mount,) = mocks.of_type("vault:index/authBackend:AuthBackend")
    assert mount.inputs["path"] == "k8s-lab-a"
    policies = {p.inputs["name"]: p.inputs["policy"] for p in mocks.of_type("vault:index/policy:Policy")}
    assert set(policies) == {
        "k8s-lab-a-kv-read",
        "k8s-lab-a-kv-write",
        "vaultfleet-apply-lab-a",
        "vaultfleet-preview-lab-a",
    }
    assert 'path "auth/k8s-lab-a/role/*"' in policies["vaultfleet-preview-lab-a"]
    # Named as in the shared stack's subtree, at the root: `vaultfleet migrate` moves state unchanged.
    (access,) = [r for r in mocks.resources if r.typ == "vaultfleet:vault:ClusterAccess"]
    assert access.name == "fleet-cluster-lab-a"
    # Nothing of another cluster, nothing in the cluster.
    assert not [r for r in mocks.resources if "lab-b" in r.name]
    assert not mocks.of_type("pulumi:providers:kubernetes")


def test_the_shared_stack_names_each_cluster_and_reads_no_clusters_file(fleet):
    # A cluster file that does not validate would stop the shared layout's shared stack; here the
    # shared stack does not read it.
    edit_stack(fleet, "lab-b", lambda c: c["vaultfleet:roles"][0].update(audiences="vault"))
    edit_stack(fleet, "vault", lambda c: c.update({"vaultfleet:pipeline": PIPELINE}))
    mocks = run_program(fleet, "vault")
    assert not mocks.of_type("vault:index/authBackend:AuthBackend")
    assert {p.inputs["name"] for p in mocks.of_type("vault:index/policy:Policy")} == {"vaultfleet-previewer"}
    roles = {r.inputs["roleName"]: r.inputs for r in mocks.of_type("vault:jwt/authBackendRole:AuthBackendRole")}
    assert roles["applier"]["tokenPolicies"] == ["vaultfleet-apply-lab-a", "vaultfleet-apply-lab-b"]
    assert roles["previewer"]["tokenPolicies"] == [
        "vaultfleet-previewer",
        "vaultfleet-preview-lab-a",
        "vaultfleet-preview-lab-b",
    ]


def test_an_access_stack_in_the_shared_layout_or_of_the_shared_file_is_refused(fleet):
    mocks = Mocks()
    with pytest.raises(Exception, match=r"not a cluster's stack file"):
        run_program(fleet, "vault.vault", mocks)
    set_cluster_access(fleet, "shared")
    with pytest.raises(Exception, match=r"Pulumi.yaml: vaultfleet:clusterAccess: stack vault.lab-a: the shared stack"):
        run_program(fleet, "vault.lab-a", mocks)
    assert mocks.resources == []


def test_a_stack_file_may_not_set_the_layout(fleet):
    edit_stack(fleet, "lab-a", lambda c: c.update({"vaultfleet:clusterAccess": "shared"}))
    mocks = Mocks()
    with pytest.raises(Exception, match=r"stacks/Pulumi.lab-a.yaml: vaultfleet:clusterAccess: fleet-wide"):
        run_program(fleet, "lab-a", mocks)
    assert mocks.resources == []


def test_an_access_stack_refuses_a_mount_its_neighbour_uses_before_registering_anything(fleet):
    # lab-b's file claims lab-a's mount: its applier policy would pin writes to lab-a's roles.
    edit_stack(fleet, "lab-b", lambda c: c["vaultfleet:cluster"].update(mountPath="k8s-lab-a"))
    mocks = Mocks()
    with pytest.raises(Exception) as refused:
        run_program(fleet, "vault.lab-b", mocks)
    assert (
        "stacks/Pulumi.lab-b.yaml: vaultfleet:cluster.mountPath: mount path 'k8s-lab-a' is also used by stack 'lab-a'"
        in str(refused.value)
    )
    assert mocks.resources == []


def test_names_stages_and_shards_keep_a_clusters_access_stack_with_it(fleet):
    project = Project(fleet)
    assert project.all_stack_names() == ["lab-a", "lab-b", "vault", "vault.lab-a", "vault.lab-b"]
    assert project.knows("vault.lab-a") and not project.knows("vault.vault") and not project.knows("vault.nope")
    assert project.stack("vault.lab-a").config_file_args == ["--config-file", str(fleet / "stacks/Pulumi.lab-a.yaml")]
    assert runner.stages(project, project.all_stack_names()) == [
        ["vault"],
        ["vault.lab-a", "vault.lab-b"],
        ["lab-a", "lab-b"],
    ]
    names = [f"c{i:03d}" for i in range(10)]
    each = [Shard(i, 3).of([*names, *(f"vault.{n}" for n in names)]) for i in (1, 2, 3)]
    for shard in each:
        assert {f"vault.{n}" for n in shard if "." not in n} == {n for n in shard if "." in n}
    set_cluster_access(fleet, "shared")
    assert Project(fleet).all_stack_names() == ["lab-a", "lab-b", "vault"]


def test_changed_since_runs_a_clusters_access_stack_and_the_shared_one_only_when_a_file_comes_or_goes(fleet):
    commit_all(fleet, "fleet")
    edit_stack(fleet, "lab-a", lambda c: c["vaultfleet:roles"][0].update(ttl="2h"))
    assert changed_since(Project(fleet), "HEAD") == ["lab-a", "vault.lab-a"]
    shutil.copy(fleet / "stacks/Pulumi.lab-b.yaml", fleet / "stacks/Pulumi.lab-c.yaml")
    assert changed_since(Project(fleet), "HEAD") == ["lab-a", "lab-c", "vault", "vault.lab-a", "vault.lab-c"]
    commit_all(fleet, "lab-c")
    (fleet / "stacks/Pulumi.lab-c.yaml").unlink()
    assert changed_since(Project(fleet), "HEAD") == ["vault"]
    git(fleet, "checkout", "-q", "--", "stacks/Pulumi.lab-c.yaml")
    edit_stack(fleet, "vault", lambda c: c.update({"vaultfleet:kvMount": "kv2"}))
    assert changed_since(Project(fleet), "HEAD") == ["vault"]


def test_the_shared_stacks_inputs_are_the_names_of_the_cluster_files_not_their_content(fleet):
    project = Project(fleet)
    before = inputs_fingerprint(project.stack("vault"))
    access = inputs_fingerprint(project.stack("vault.lab-a"))
    edit_stack(fleet, "lab-a", lambda c: c["vaultfleet:roles"][0].update(ttl="2h"))
    assert inputs_fingerprint(Project(fleet).stack("vault")) == before
    assert inputs_fingerprint(Project(fleet).stack("vault.lab-a")) != access
    shutil.copy(fleet / "stacks/Pulumi.lab-b.yaml", fleet / "stacks/Pulumi.lab-c.yaml")
    assert inputs_fingerprint(Project(fleet).stack("vault")) != before


def test_an_access_stack_is_created_without_a_stack_file_of_its_own(monkeypatch, fleet):
    from vaultfleet.fleet import engine

    ran = []

    def run_cli(args):
        ran.append(args[0])
        if args[:2] == ["stack", "init"]:
            (fleet / "stacks/Pulumi.vault.lab-a.yaml").write_text("encryptionsalt: x\n")  # as the engine does
        elif "--event-log" in args:
            assert args[args.index("--config-file") + 1].endswith("stacks/Pulumi.lab-a.yaml")
            (fleet / args[args.index("--event-log") + 1]).write_text("")

    monkeypatch.setattr(engine, "cli", lambda *a: run_cli)
    engine.run_operation(
        fleet,
        "vault.lab-a",
        {},
        ["up"],
        new=True,
        config_args=["--config-file", str(fleet / "stacks/Pulumi.lab-a.yaml")],
    )
    assert ran == ["stack", "up"]
    assert not (fleet / "stacks/Pulumi.vault.lab-a.yaml").exists()


def test_migrate_refuses_until_pulumi_yaml_names_the_layout(fleet):
    from vaultfleet.migrate import MigrateError, migrate

    set_cluster_access(fleet, "shared")
    with pytest.raises(MigrateError, match="set `vaultfleet:clusterAccess: per-cluster` first"):
        migrate(Project(fleet))


def test_shards_and_the_matrix_leave_the_access_stacks_to_the_admins_job(fleet):
    from typer.testing import CliRunner

    from vaultfleet.cli import app
    from vaultfleet.fleet.selection import select

    project = Project(fleet)
    # A shard runs with the cluster applier's token, which may not write an access stack's objects.
    chosen = select(project, None, True, shard="1/1")
    assert (chosen.stacks, chosen.left_out_shared) == (["lab-a", "lab-b"], ["vault", "vault.lab-a", "vault.lab-b"])
    result = CliRunner().invoke(app, ["matrix", "--all", "--shards", "2"], env={"VAULTFLEET_PROJECT": str(fleet)})
    assert result.exit_code == 0, result.output
    assert '"shared": ["vault", "vault.lab-a", "vault.lab-b"]' in result.stdout


# Found by the attack review of the layout (a helper with no access to these tests).


@pytest.mark.parametrize("prefix", ["vaultfleet", "vaultfleet-preview"])
def test_a_mount_prefix_that_would_name_vaultfleets_own_policies_is_refused(fleet, prefix):
    # mountPrefix `vaultfleet` and cluster `preview` render `vaultfleet-preview-<template>`: the
    # preview grants the pipeline's previewer holds for a cluster named like the template.
    from vaultfleet.validate import validate

    edit_stack(fleet, "lab-b", lambda c: c.update({"vaultfleet:mountPrefix": prefix}))
    set_cluster_access(fleet, "shared")  # the schema's check, in either layout
    findings, _ = validate(Project(fleet))
    assert [(f.file, f.field) for f in findings if f.severity == "error"] == [
        ("stacks/Pulumi.lab-b.yaml", "vaultfleet:mountPrefix")
    ]
    assert "vaultfleet's own policies" in findings[0].message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("mountPrefix", "team"),
        ("vaultAddress", "https://vault.evil.example"),
        ("databaseMount", "aws"),
        ("kvMount", "kv2"),
    ],
)
def test_per_cluster_a_stack_file_may_not_set_the_prefix_or_the_vault_address(fleet, key, value):
    # The prefix: an access stack checks names against the fleet's one prefix without reading other
    # files. The address: the admin's token runs the access stack, and goes where it points.
    edit_stack(fleet, "lab-a", lambda c: c.update({f"vaultfleet:{key}": value}))
    mocks = Mocks()
    with pytest.raises(Exception, match=rf"stacks/Pulumi.lab-a.yaml: vaultfleet:{key}: fleet-wide"):
        run_program(fleet, "vault.lab-a", mocks)
    assert mocks.resources == []
    assert Project(fleet).stack("vault.lab-a").valid_settings() is None  # so no token check goes there


def test_the_access_review_of_an_access_stack_shows_the_pipeline_appliers_gain(fleet):
    from vaultfleet.access_diff import access_diff

    edit_stack(fleet, "vault", lambda c: c.update({"vaultfleet:pipeline": PIPELINE}))
    commit_all(fleet, "fleet")
    new_role = {"name": "ops", "serviceAccounts": ["ops"], "namespaces": ["ops"], "policies": ["kv-read"]}
    edit_stack(fleet, "lab-a", lambda c: c["vaultfleet:roles"].append(new_role))
    for stacks in (["lab-a", "vault.lab-a"], ["vault"]):
        found = access_diff(Project(fleet), "HEAD", stacks)
        applier = [c for c in found.changes if c.who.role == "applier"]
        assert applier and any("auth/k8s-lab-a/role/ops" in str(c) for c in applier), (stacks, found.changes)


def test_a_shared_file_spelling_its_kind_with_an_escape_is_still_the_shared_stack(fleet):
    (fleet / "stacks/Pulumi.vault.yaml").write_text('config:\n  vaultfleet:kind: "\\x73hared"\n')
    assert "shared" not in (fleet / "stacks/Pulumi.vault.yaml").read_text()
    assert Project(fleet).stack("vault").is_shared


def test_a_file_named_like_an_access_stack_is_no_stack_and_validate_names_it(fleet):
    from vaultfleet.validate import validate

    shutil.copy(fleet / "stacks/Pulumi.lab-a.yaml", fleet / "stacks/Pulumi.vault.lab-a.yaml")
    project = Project(fleet)
    assert project.stack_names() == ["lab-a", "lab-b", "vault"]
    assert project.all_stack_names() == ["lab-a", "lab-b", "vault", "vault.lab-a", "vault.lab-b"]
    findings, _ = validate(project)
    assert [(f.file, f.message) for f in findings if f.severity == "error"] == [
        ("stacks/Pulumi.vault.lab-a.yaml", "not a stack name (a DNS label, no dot): no stack reads this file")
    ]


def test_a_neighbour_that_does_not_validate_does_not_stop_an_access_stack(fleet):
    # A file named `kv` is a neighbour of every cluster with a kv-* template.
    shutil.copy(fleet / "stacks/Pulumi.lab-b.yaml", fleet / "stacks/Pulumi.kv.yaml")
    edit_stack(fleet, "kv", lambda c: c["vaultfleet:roles"][0].update(audiences="x"))
    assert run_program(fleet, "vault.lab-a").of_type("vault:index/authBackend:AuthBackend")


def lab_b_deleted(fleet, monkeypatch, backend: list[str]) -> None:
    """lab-b's file deleted since HEAD, with `backend` the stacks `pulumi stack ls` lists."""
    from vaultfleet.fleet import engine

    commit_all(fleet, "fleet")
    (fleet / "stacks/Pulumi.lab-b.yaml").unlink()
    listed = json.dumps([{"name": name} for name in backend])
    monkeypatch.setattr(engine, "run_pulumi", lambda args, *a: engine.CommandOutput(listed, ""))


def test_deleting_a_file_whose_stacks_are_still_in_the_backend_fails_the_run(fleet, monkeypatch):
    from typer.testing import CliRunner

    from vaultfleet.cli import app

    lab_b_deleted(fleet, monkeypatch, ["vault", "vault.lab-b", "lab-a"])
    monkeypatch.setattr("vaultfleet.cli.fleet._run", lambda project, op, names, *a, **k: [])
    result = CliRunner().invoke(
        app, ["up", "--changed-since", "HEAD", "--format", "json"], env={"VAULTFLEET_PROJECT": str(fleet)}
    )
    assert result.exit_code == 1, result.output
    (entry,) = json.loads(result.stdout)
    assert entry["stack"] == "vault.lab-b"
    assert "stacks/Pulumi.lab-b.yaml is deleted but stack vault.lab-b is still in the backend" in entry["error"]


def test_the_engine_reads_an_access_stacks_config_from_its_clusters_file_in_every_command_that_reads_config():
    from vaultfleet.fleet import engine

    ran = []
    engine_run = engine.run_pulumi
    try:
        engine.run_pulumi = lambda args, *a: ran.append(args)
        run_cli = engine.cli("/p", "vault.x", {}, ["--config-file", "stacks/Pulumi.x.yaml"])
        run_cli(["refresh", "--yes"])
        run_cli(["stack", "export"])
    finally:
        engine.run_pulumi = engine_run
    assert ran == [
        ["refresh", "--yes", "--config-file", "stacks/Pulumi.x.yaml", "--stack", "vault.x"],
        ["stack", "export", "--stack", "vault.x"],
    ]


# Found by the second attack review.


@pytest.mark.parametrize("key", ["vaultfleet:config:vaultAddress", "vaultAddress", ":vaultAddress"])
def test_a_config_key_pulumi_would_read_as_another_is_refused_before_anything_is_registered(fleet, key):
    # Pulumi takes `vaultfleet:config:vaultAddress` (its legacy form) as `vaultfleet:vaultAddress`:
    # the admin's token would go where the file says, past the fleet-only check.
    edit_stack(fleet, "lab-a", lambda c: c.update({key: "https://vault.evil.example"}))
    mocks = Mocks()
    with pytest.raises(Exception, match=r"a config key is `<namespace>:<name>` \(one colon\)"):
        run_program(fleet, "vault.lab-a", mocks)
    assert mocks.resources == []


def test_an_access_stack_whose_file_does_not_validate_is_not_started(fleet, monkeypatch):
    from vaultfleet.fleet import engine

    monkeypatch.setattr(engine, "run_operation", lambda *a, **k: pytest.fail("the engine ran"))
    edit_stack(fleet, "lab-a", lambda c: c.update({"vaultfleet:config:vaultAddress": "https://vault.evil.example"}))
    (result,) = runner.run(Project(fleet), ["vault.lab-a"], "up", env={"VAULT_TOKEN": "admin"})
    assert not result.ok and result.error.startswith("not run: stacks/Pulumi.lab-a.yaml does not validate")


def test_release_and_migrate_send_the_callers_token_to_the_fleets_vault_only(fleet):
    from vaultfleet.release import env_for

    edit_stack(fleet, "lab-a", lambda c: c.update({"vaultfleet:vaultAddress": "https://vault.evil.example"}))
    path = fleet / "stacks/Pulumi.lab-a.yaml"
    path.write_text("secretsprovider: hashivault://vaultfleet-lab-a\n" + path.read_text())
    env = env_for(Project(fleet).stack("lab-a"), {"VAULT_TOKEN": "admin"})
    assert (env["VAULT_SERVER_URL"], env["VAULT_SERVER_TOKEN"]) == ("http://127.0.0.1:18200", "admin")


def test_migrate_refuses_a_fleet_that_does_not_validate_in_the_new_layout(fleet):
    from vaultfleet.migrate import MigrateError, migrate

    edit_stack(fleet, "lab-a", lambda c: c.update({"vaultfleet:mountPrefix": "team"}))
    with pytest.raises(MigrateError, match=r"stacks/Pulumi.lab-a.yaml: vaultfleet:mountPrefix: fleet-wide"):
        migrate(Project(fleet))


def test_matrix_stops_the_pipeline_when_a_deleted_files_stacks_are_still_in_the_backend(fleet, monkeypatch):
    from typer.testing import CliRunner

    from vaultfleet.cli import app

    lab_b_deleted(fleet, monkeypatch, ["vault", "lab-b"])
    result = CliRunner().invoke(
        app, ["matrix", "--changed-since", "HEAD", "--shards", "1"], env={"VAULTFLEET_PROJECT": str(fleet)}
    )
    assert result.exit_code == 1 and "stack lab-b is still in the backend" in result.output, result.output


def test_an_access_stack_refuses_the_pipelines_mount(fleet):
    edit_stack(fleet, "vault", lambda c: c.update({"vaultfleet:pipeline": PIPELINE}))
    edit_stack(fleet, "lab-a", lambda c: c["vaultfleet:cluster"].update(mountPath="ci"))
    mocks = Mocks()
    with pytest.raises(Exception, match=r"mount path 'ci' is also used by the shared stack's pipeline"):
        run_program(fleet, "vault.lab-a", mocks)
    assert mocks.resources == []


def test_a_stack_files_top_level_keys_are_config_and_the_secrets_settings_only(fleet):
    path = fleet / "stacks/Pulumi.lab-a.yaml"
    path.write_text("environment:\n  - fleet/overrides\n" + path.read_text())
    with pytest.raises(Exception, match=r"stacks/Pulumi.lab-a.yaml: environment: not a stack-file key"):
        run_program(fleet, "vault.lab-a")


def test_a_symlinked_stack_file_is_no_stack_and_validate_names_it(fleet, tmp_path):
    from vaultfleet.validate import validate

    (tmp_path / "elsewhere.yaml").write_text((fleet / "stacks/Pulumi.lab-b.yaml").read_text())
    (fleet / "stacks/Pulumi.lab-x.yaml").symlink_to(tmp_path / "elsewhere.yaml")
    project = Project(fleet)
    assert "lab-x" not in project.stack_names()
    errors = [(f.file, f.message) for f in validate(project)[0] if f.severity == "error"]
    assert errors == [
        ("stacks/Pulumi.lab-x.yaml", "a symbolic link: a change to the file it points at selects no stack")
    ]


# Found by the third attack review.


def test_a_root_python_module_or_pulumi_file_touches_every_stack_and_validate_refuses_a_second_project_file(fleet):
    from vaultfleet.validate import validate

    commit_all(fleet, "fleet")
    project = Project(fleet)
    before = inputs_fingerprint(project.stack("vault.lab-a"))
    (fleet / "yaml.py").write_text("")  # `import yaml` in the program would load it
    assert changed_since(Project(fleet), "HEAD") == Project(fleet).all_stack_names()
    assert inputs_fingerprint(Project(fleet).stack("vault.lab-a")) != before
    (fleet / "Pulumi.json").write_text('{"name": "vaultfleet"}')
    errors = [(f.file, f.message) for f in validate(Project(fleet))[0] if f.severity == "error"]
    assert errors == [("Pulumi.json", "a second Pulumi project file: the engine could read it in place of Pulumi.yaml")]


def test_a_program_change_makes_the_access_review_incomplete(fleet):
    from vaultfleet.access_diff import access_diff

    commit_all(fleet, "fleet")
    (fleet / "vaultfleet/render/applier.py").write_text((fleet / "vaultfleet/render/applier.py").read_text() + "\n")
    found = access_diff(Project(fleet), "HEAD", Project(fleet).all_stack_names())
    assert not found.identical
    assert found.unread == [
        "vaultfleet/render/applier.py: the program changed; the review works out both sides with this checkout's code"
    ]


def test_a_review_that_cannot_be_worked_out_says_so_in_the_output(fleet, monkeypatch):
    from typer.testing import CliRunner

    from vaultfleet.cli import app

    commit_all(fleet, "fleet")
    edit_stack(fleet, "lab-a", lambda c: c["vaultfleet:roles"][0].update(ttl="2h"))
    monkeypatch.setattr("vaultfleet.access_diff.access_diff", lambda *a: (_ for _ in ()).throw(OSError("gone")))
    monkeypatch.setattr("vaultfleet.cli.fleet._run", lambda project, op, names, *a, **k: [])
    result = CliRunner().invoke(app, ["preview", "--changed-since", "HEAD"], env={"VAULTFLEET_PROJECT": str(fleet)})
    assert "the access review could not be worked out: gone" in result.stdout, result.output


def test_a_symlinked_policy_template_is_refused(fleet, tmp_path):
    from vaultfleet.validate import validate

    (tmp_path / "kv-read.hcl").write_text((fleet / "policies/kv-read.hcl").read_text())
    (fleet / "policies/kv-read.hcl").unlink()
    (fleet / "policies/kv-read.hcl").symlink_to(tmp_path / "kv-read.hcl")
    errors = [(f.file, f.message) for f in validate(Project(fleet))[0] if f.severity == "error"]
    assert ("policies/kv-read.hcl", "a symbolic link: a change to the file it points at is not reviewed") in errors


def test_a_state_key_scheme_in_another_case_is_still_checked(fleet):
    path = fleet / "stacks/Pulumi.lab-a.yaml"
    path.write_text("secretsprovider: HashiVault://vaultfleet-lab-b\n" + path.read_text().split("encryptionsalt")[0])
    with pytest.raises(Exception, match=r"secretsprovider: 'HashiVault://vaultfleet-lab-b'"):
        _ = Project(fleet).stack("lab-a").settings


def test_the_access_review_names_the_preview_grants_as_the_program_writes_them(fleet):
    from vaultfleet.access import pipeline_grants

    edit_stack(fleet, "vault", lambda c: c.update({"vaultfleet:pipeline": PIPELINE}))
    edit_stack(fleet, "lab-a", lambda c: c["vaultfleet:cluster"].update(mountPath="legacy-a"))
    project = Project(fleet)
    rows = pipeline_grants(project.stack("vault").settings, project.policy_dir, [project.stack("lab-a").settings])
    legacy = {(r.policy, r.path) for r in rows if r.role == "previewer" and "legacy-a" in r.path}
    assert legacy and {policy for policy, _ in legacy} == {"vaultfleet-preview-lab-a"}
