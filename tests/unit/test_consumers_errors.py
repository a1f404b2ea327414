"""`vaultfleet consumers` refusals: exit 2 with a clear message and nothing on stdout, for bad arguments
and for database credentials the shared stack cannot back."""

import pytest

from tests.harness import add_database, add_team_role, consumers, edit_stack, runner
from vaultfleet.cli import app


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
