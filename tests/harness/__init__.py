"""The tests' one harness: every helper more than one test module (or a benchmark) uses.

Import from here (`from tests.harness import Fleet, login`); the conftest.py files hold fixtures and
hooks only. By concern:

- `project`: the repository, project copies (stack files only, or runnable on the lab), stack-file
  edits, the checkout's tracked changes, the wheel (`built_wheel`, `install_wheel`).
- `lab`: engine runs on the lab (`up_stacks`, `destroy_stacks`, `plain_stack_export`), Vault
  clients and tokens, `login` (kubernetes or jwt, a ServiceAccount's token or a given JWT), and
  `Fleet`, a project copy on the lab with its stacks, clients and database declaration.
- `unit`: stack-file values and schema checks, `vaultfleet consumers` through the CLI, Pulumi mocks,
  the lab-file checks.
"""

from tests.harness.lab import (
    LAB_CLUSTERS,
    Fleet,
    LoginLoop,
    destroy_stacks,
    enable_transit,
    login,
    plain_stack_export,
    root_client,
    up_stacks,
    use_lab_for_cli,
    vault_token,
)
from tests.harness.project import (
    PREVIOUS_RELEASE,
    PROGRAM_FILES,
    REPO,
    STACK_FILES,
    add_team_role,
    built_wheel,
    copy_project,
    copy_project_files,
    edit_stack,
    install_wheel,
    previous_release_wheel,
    tracked_changes,
    use_state_key,
    wheel_cli,
)
from tests.harness.unit import (
    DB_URL,
    FILE,
    FLEET,
    REVIEWER_JWT,
    SHARED_FILE,
    VAULT,
    ComponentTest,
    Mocks,
    accepted,
    add_database,
    by_kind,
    cluster,
    cluster_values,
    consumers,
    problems,
    refused,
    role,
    root_only,
    runner,
    unchanged,
)

__all__ = [
    "DB_URL",
    "FILE",
    "FLEET",
    "LAB_CLUSTERS",
    "LoginLoop",
    "PREVIOUS_RELEASE",
    "PROGRAM_FILES",
    "REPO",
    "REVIEWER_JWT",
    "SHARED_FILE",
    "STACK_FILES",
    "VAULT",
    "ComponentTest",
    "Fleet",
    "Mocks",
    "accepted",
    "add_database",
    "add_team_role",
    "built_wheel",
    "by_kind",
    "cluster",
    "cluster_values",
    "consumers",
    "copy_project",
    "copy_project_files",
    "destroy_stacks",
    "edit_stack",
    "install_wheel",
    "enable_transit",
    "login",
    "plain_stack_export",
    "previous_release_wheel",
    "problems",
    "refused",
    "role",
    "root_client",
    "root_only",
    "runner",
    "tracked_changes",
    "unchanged",
    "up_stacks",
    "use_lab_for_cli",
    "use_state_key",
    "vault_token",
    "wheel_cli",
]
