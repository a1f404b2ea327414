"""The access review offline: what a change gains and loses per identity and path, against the stack
files and policies at a git revision (`vaultfleet access --changed-since`, docs/access-review.md)."""

from __future__ import annotations

import json
import subprocess

import yaml
from typer.testing import CliRunner

from tests.harness import add_database, edit_stack
from vaultfleet.access_diff import access_diff
from vaultfleet.cli import app
from vaultfleet.stackfile import Project

runner = CliRunner()


def test_an_unchanged_fleet_says_so_in_one_line(git_project):
    result = runner.invoke(app, ["access", "--changed-since", "HEAD"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "access: identical to HEAD (no identity gains or loses a capability)"


def test_a_template_edit_names_every_cluster_and_role_it_reaches(git_project):
    path = git_project / "policies/kv-read.hcl"
    path.write_text(path.read_text().replace('capabilities = ["read"]', 'capabilities = ["read", "list"]'))
    found = access_diff(Project(git_project), "HEAD")
    # kv-read is every lab role's template: each one gains `list` on its cluster's data subtree.
    reached = sorted(
        f"{stack} {role['name']}"
        for stack in ("lab-a", "lab-b")
        for role in yaml.safe_load((git_project / f"stacks/Pulumi.{stack}.yaml").read_text())["config"][
            "vaultfleet:roles"
        ]
        if "kv-read" in role.get("policies", [])
    )
    assert len(reached) >= 3
    assert found.templates == {"policies/kv-read.hcl": reached}
    gained = {(c.who.cluster, c.who.role, c.path, c.gained, c.lost) for c in found.changes}
    assert gained == {
        (r.split()[0], r.split()[1], f"kv/data/clusters/{r.split()[0]}/*", ("list",), ()) for r in reached
    }
    # Each names the policies that grant the path (kv-write grants it too to the deployers).
    assert all(f"k8s-{c.who.cluster}-kv-read" in c.policies for c in found.changes)
    markdown = runner.invoke(app, ["access", "--changed-since", "HEAD", "--format", "markdown"]).output
    assert "`policies/kv-read.hcl` changed; it reaches " + ", ".join(f"`{r}`" for r in reached) in markdown
    assert "| lab-a | `app/app` | app (`auth/k8s-lab-a`) | `kv/data/clusters/lab-a/*` | list |  |" in markdown


def test_a_binding_widened_to_every_namespace_shows_as_gained_access(git_project):
    edit_stack(git_project, "lab-a", lambda c: c["vaultfleet:roles"][0].update(namespaces=["*"]))
    result = runner.invoke(app, ["access", "lab-a", "--changed-since", "HEAD", "--format", "json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert found["identical"] is False and found["templates"] == {}
    by_namespace = {}
    for change in found["changes"]:
        by_namespace.setdefault(change["namespace"], []).append((change["path"], change["gained"], change["lost"]))
    # Every namespace's `app` ServiceAccount gains what the role grants; the one bound before keeps
    # it (the `*` binding takes it in), so no loss is shown for it.
    assert set(by_namespace) == {"*"}
    assert ("kv/data/clusters/lab-a/*", ["read"], []) in by_namespace["*"]
    text = runner.invoke(app, ["access", "lab-a", "--changed-since", "HEAD"]).output
    assert "lab-a */app as role app (auth/k8s-lab-a)" in text and "+ read  kv/data/clusters/lab-a/*" in text


def test_a_ref_that_is_not_a_commit_is_refused(git_project):
    result = runner.invoke(app, ["access", "--changed-since", "no-such-ref"])
    assert result.exit_code == 2 and "no such commit" in result.output, result.output


def test_preview_changed_since_carries_the_access_review_in_every_format(git_project, monkeypatch):
    # The engine runs are the lab's (tests/lab/test_access_review.py); here only what preview adds.
    from vaultfleet.cli import fleet
    from vaultfleet.fleet.runner import StackResult

    monkeypatch.setattr(
        fleet, "_run", lambda project, op, names, *a, **k: [StackResult(stack=n, operation=op, ok=True) for n in names]
    )
    edit_stack(git_project, "lab-a", lambda c: c["vaultfleet:roles"][0].update(namespaces=["*"]))
    text = runner.invoke(app, ["preview", "--changed-since", "HEAD"]).output
    assert "access since HEAD:" in text and "lab-a" in text and "+ " in text
    markdown = runner.invoke(app, ["preview", "--changed-since", "HEAD", "--format", "markdown"]).output
    assert "| stack | result |" in markdown and "### Access review (against `HEAD`)" in markdown
    result = runner.invoke(app, ["preview", "--changed-since", "HEAD", "--format", "json"])
    assert result.exit_code == 0, result.output
    stacks = {s["stack"]: s for s in json.loads(result.output)}  # still a list, one entry per stack
    assert set(stacks) == {"lab-a", "vault"}  # the shared stack holds lab-a's applier policy
    access = stacks["lab-a"]["access"]
    assert access["since"] == "HEAD" and access["identical"] is False
    assert {c["cluster"] for c in access["changes"]} == {"lab-a"}
    assert any(c["namespace"] == "*" and c["gained"] for c in access["changes"])


def test_a_change_in_whom_a_login_trusts_is_never_identical(git_project):
    # Pointed at another API server and with the audience check dropped, the role's policies are
    # the same, yet anyone that server vouches for logs in.
    def repoint(config):
        config["vaultfleet:cluster"]["apiHost"] = "https://kube.attacker.example:6443"
        config["vaultfleet:roles"][0].pop("audience")

    edit_stack(git_project, "lab-a", repoint)
    found = access_diff(Project(git_project), "HEAD")
    assert not found.identical and found.changes == []
    assert {(t.stack, t.field, t.after) for t in found.trust} == {
        ("lab-a", "apiHost", "https://kube.attacker.example:6443"),
        ("lab-a", "roles[app].audience", "(any)"),
    }
    markdown = runner.invoke(app, ["access", "--changed-since", "HEAD", "--format", "markdown"]).output
    assert "**Login trust changed**" in markdown
    assert "| lab-a | `apiHost` | `(from the kube context)` | `https://kube.attacker.example:6443` |" in markdown


def test_an_edit_of_a_fleet_policy_names_the_tokens_that_hold_it(git_project):
    path = git_project / "policies/fleet/vaultfleet-previewer.hcl"
    path.write_text(path.read_text() + '\npath "kv/*" {\n  capabilities = ["read", "list"]\n}\n')
    found = access_diff(Project(git_project), "HEAD")
    assert not found.identical
    assert found.templates == {"policies/fleet/vaultfleet-previewer.hcl": ["every token holding vaultfleet-previewer"]}
    text = runner.invoke(app, ["access", "--changed-since", "HEAD"]).output
    assert (
        "policies/fleet/vaultfleet-previewer.hcl changed; it reaches every token holding vaultfleet-previewer" in text
    )


def _commit(project) -> None:
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qam", "base"],
        cwd=project,
        check=True,
    )


def test_a_database_role_handing_out_more_names_its_path_and_who_reads_it(git_project):
    # The grants stay the same (lab-a's orders reads database/creds/app-readonly before and after),
    # but the users the role creates may now change every table.
    add_database(git_project)
    _commit(git_project)
    assert access_diff(Project(git_project), "HEAD").identical  # control: the same files
    grant_all = 'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{{name}}";'
    edit_stack(
        git_project,
        "vault",
        lambda c: c["vaultfleet:database"]["roles"][1]["creationStatements"].append(grant_all),
    )
    found = access_diff(Project(git_project), "HEAD")
    assert not found.identical and found.changes == [] and found.trust == []
    (change,) = found.credentials
    assert (change.stack, change.path, change.field) == ("vault", "database/creds/app-readonly", "creationStatements")
    assert json.loads(change.after)[-1] == grant_all and grant_all not in change.before
    assert change.readers == ("lab-a orders",)  # not lab-a's app or deployer: no db-creds
    markdown = runner.invoke(app, ["access", "--changed-since", "HEAD", "--format", "markdown"]).output
    assert "**Database credentials changed**" in markdown
    assert "| `database/creds/app-readonly` | `creationStatements` |" in markdown and "`lab-a orders` |" in markdown
    text = runner.invoke(app, ["access", "--changed-since", "HEAD"]).output
    assert "! database/creds/app-readonly (vault) hands out other credentials: creationStatements" in text


def _database_role(project, index: int, **changes) -> None:
    edit_stack(project, "vault", lambda c: c["vaultfleet:database"]["roles"][index].update(changes))


def test_statements_compare_whole_a_split_statement_or_a_placeholder_is_a_change(git_project):
    # Found by an attack review: statements compared as joined text, with a placeholder for none.
    add_database(git_project)
    _database_role(
        git_project, 1, creationStatements=["CREATE ROLE \"{{name}}\" PASSWORD '{{password}}'; -- GRANT ALL"]
    )
    _commit(git_project)
    _database_role(
        git_project, 1, creationStatements=["CREATE ROLE \"{{name}}\" PASSWORD '{{password}}'; --", "GRANT ALL"]
    )
    _database_role(git_project, 0, revocationStatements=["(the plugin's default)"])
    found = access_diff(Project(git_project), "HEAD")
    assert {(c.path, c.field) for c in found.credentials} == {
        ("database/creds/app-readonly", "creationStatements"),
        ("database/creds/reporting", "revocationStatements"),
    }
    assert not found.identical


def test_readers_are_each_sides_own_and_take_in_what_only_the_login_decides(git_project):
    add_database(git_project)

    def roles(config):
        # lab-b: a `*`-bound role reading the creds path named after its namespace; an unmanaged one.
        config["vaultfleet:roles"].append(
            {
                "name": "team",
                "serviceAccounts": ["app"],
                "namespaces": ["*"],
                "policies": ["db-ns"],
                "audience": "vault",
            }
        )
        config["vaultfleet:roles"].append(
            {"name": "legacy", "serviceAccounts": ["old"], "namespaces": ["old"], "existingPolicies": ["team-db"]}
        )
        config["vaultfleet:policies"] = [*config.get("vaultfleet:policies", ["kv-read", "kv-write"]), "db-ns"]

    (git_project / "policies/db-ns.hcl").write_text(
        'path "${database_mount}/creds/{{identity.entity.aliases.${mount_accessor}.metadata.service_account_namespace}}" {\n'
        '  capabilities = ["read"]\n}\n'
    )
    edit_stack(git_project, "lab-b", roles)
    _commit(git_project)
    # A new role readable by namespace: the `*`-bound team reads it from a namespace named `payments`.
    edit_stack(
        git_project,
        "vault",
        lambda c: c["vaultfleet:database"]["roles"].append(
            {
                "name": "payments",
                "connection": "shop-db",
                "creationStatements": ["CREATE ROLE \"{{name}}\" SUPERUSER PASSWORD '{{password}}';"],
            }
        ),
    )
    found = access_diff(Project(git_project), "HEAD")
    (change,) = found.credentials
    assert (change.path, change.field, change.after) == ("database/creds/payments", "role", "added")
    assert change.readers == ("lab-b legacy (existingPolicies: check in Vault)", "lab-b team")


def test_another_kube_context_is_a_login_trust_change(git_project):
    # Found by an attack review: with apiHost and caCert unset, the context names the API server
    # whose tokens the mount accepts; both sides read "(from the kube context)".
    edit_stack(git_project, "lab-a", lambda c: c["vaultfleet:cluster"].update(kubeContext="lab-b"))
    found = access_diff(Project(git_project), "HEAD")
    assert not found.identical
    assert {(t.stack, t.field, t.before, t.after) for t in found.trust} == {("lab-a", "kubeContext", "lab-a", "lab-b")}


def test_a_stack_file_that_does_not_validate_makes_the_review_incomplete(git_project):
    # Found by an attack review: an encrypted `vaultfleet:database` is read by the engine, but the
    # review cannot read it and used to leave it out without a word.
    edit_stack(git_project, "vault", lambda c: c.update({"vaultfleet:database": {"secure": "v1:abc"}}))
    found = access_diff(Project(git_project), "HEAD")
    assert not found.identical and len(found.unread) == 1
    assert found.unread[0].startswith("Pulumi.vault.yaml: vaultfleet:database"), found.unread
    text = runner.invoke(app, ["access", "lab-a", "--changed-since", "HEAD"]).output
    assert "! incomplete: not in the review, the stack file does not validate: Pulumi.vault.yaml" in text


def test_a_fleet_policy_edit_shows_in_the_shared_stacks_preview_json(git_project, monkeypatch):
    from vaultfleet.cli import fleet
    from vaultfleet.fleet.runner import StackResult

    monkeypatch.setattr(
        fleet, "_run", lambda project, op, names, *a, **k: [StackResult(stack=n, operation=op, ok=True) for n in names]
    )
    path = git_project / "policies/fleet/vaultfleet-previewer.hcl"
    path.write_text(path.read_text() + '\npath "database/creds/*" {\n  capabilities = ["read"]\n}\n')
    result = runner.invoke(app, ["preview", "--changed-since", "HEAD", "--format", "json"])
    assert result.exit_code == 0, result.output
    entry = {s["stack"]: s for s in json.loads(result.output)}["vault"]
    assert entry["access"]["identical"] is False
    assert entry["access"]["templates"] == {
        "policies/fleet/vaultfleet-previewer.hcl": ["every token holding vaultfleet-previewer"]
    }
