"""Upgrading vaultfleet under a fleet (issue 30): a fleet repository the previous release wrote
(`vaultfleet init` from its wheel) is brought up by that release: the shared stack with a database
engine on the lab's PostgreSQL and one cluster, a workload logged in, database credentials issued. Then the fleet pins this version, as a user's upgrade does (the
requirements.txt line, the package installed in its place), and this version's `validate` and
`preview --expect-no-changes` find nothing to change in the files and the objects the old one made.
Its `up` keeps every object: the mount's accessor, the token the workload holds still works, the
credentials' lease still renews (its connection kept), and the connection is protected from then on
(0.2.0 guards it; the flag is the state's alone, so the preview before found nothing to change).

The previous release is tests/harness/project.py's PREVIOUS_RELEASE (tag v0.1.0), built from its
commit's files as `make wheel` builds it. Both wheels are installed on their own (`install_wheel`);
the fleet's virtualenv is this one, whose SDKs both versions pin alike.

Marked `server`: the issue asks for it on both servers, and whether the new program's requests
equal what the old one left in Vault (defaults a server fills in, values it reads back) is the
server's. On lab-c, which no other module uses while this one runs (the modules run one after
another; test_auth_modes, test_crash and test_init_fleet, which use it, destroy what they made, as
this one does).
"""

from __future__ import annotations

import json
import secrets

import pytest
from pulumi import automation as auto
from pydantic import SecretStr

from tests.harness import (
    PREVIOUS_RELEASE,
    REPO,
    built_wheel,
    destroy_stacks,
    edit_stack,
    install_wheel,
    login,
    plain_stack_export,
    previous_release_wheel,
    root_client,
    wheel_cli,
)
from tests.lab import database as lab_db
from vaultfleet import __version__
from vaultfleet.fleet.engine import pulumi_command

pytestmark = [pytest.mark.lab, pytest.mark.server]
CLUSTER = "lab-c"


def test_a_fleet_the_previous_release_made_upgrades_with_no_changes(lab, lab_env, tmp_path):
    old_version, _ = PREVIOUS_RELEASE
    assert old_version != __version__, "PREVIOUS_RELEASE must name an older release than this checkout"
    old_site, new_site = tmp_path / "site-old", tmp_path / "site-new"
    old = wheel_cli({**lab_env, **install_wheel(previous_release_wheel(tmp_path / "old"), old_site)}, old_site)
    new_env = {**lab_env, **install_wheel(built_wheel(tmp_path / "new"), new_site)}
    new = wheel_cli(new_env, new_site)

    fleet = tmp_path / "fleet"
    old("init", str(fleet), "--vault-address", lab.vault_addr, cwd=tmp_path)
    (fleet / ".venv").symlink_to(REPO / ".venv")  # the SDKs; each wheel comes first on PYTHONPATH
    requirements = fleet / "requirements.txt"
    assert f"\nvaultfleet=={old_version}\n" in requirements.read_text()
    old("onboard", CLUSTER, "--context", CLUSTER, cwd=fleet)
    declare_database(lab, lab_env, fleet)
    root = root_client(lab)
    try:
        old("up", "vault", CLUSTER, cwd=fleet)
        before = login(lab, CLUSTER)
        mount = f"k8s-{CLUSTER}/"
        accessor = root.sys.list_auth_methods()["data"][mount]["accessor"]
        lease = root.secrets.database.generate_credentials("reporting", mount_point="database")["lease_id"]

        # The upgrade: the pin moves, the fleet's own files stay as the old release wrote them.
        requirements.write_text(requirements.read_text().replace(f"=={old_version}", f"=={__version__}"))
        assert __version__ in new("--version", cwd=fleet)
        new("validate", "--strict", cwd=fleet)
        new("preview", "vault", CLUSTER, "--expect-no-changes", cwd=fleet)

        # Applying it (the inputs digest each stack exports moves with the package) keeps every
        # object: the same mount, the token issued before the upgrade still reads, the lease renews.
        new("up", "vault", CLUSTER, cwd=fleet)
        assert root.sys.list_auth_methods()["data"][mount]["accessor"] == accessor
        assert before.auth.token.lookup_self()["data"]["accessor"]
        assert root.sys.renew_lease(lease)["lease_id"] == lease
        state = json.loads(plain_stack_export(fleet, "vault", new_env))["deployment"]["resources"]
        connection = [r for r in state if r["type"] == CONNECTION]
        assert [r.get("protect") for r in connection] == [True]
        new("preview", "vault", CLUSTER, "--expect-no-changes", cwd=fleet)
    finally:
        destroy_stacks(fleet, new_env, [CLUSTER, "vault"])
        lab_db.drop(lab.postgres)


CONNECTION = "vault:database/secretBackendConnection:SecretBackendConnection"


def declare_database(lab, env: dict[str, str], fleet) -> None:
    """The shared stack's database engine on the lab's PostgreSQL, declared as a user does: one role
    in the stack file, the connection's password through `config set --secret --path`."""
    password = SecretStr(secrets.token_urlsafe(24))
    lab_db.prepare(lab.postgres, password)
    engine = lab_db.engine_config(lab.postgres, [{"name": "reporting", "defaultTtl": "5m", "maxTtl": "30m"}])
    edit_stack(fleet, "vault", lambda config: config.update({"vaultfleet:database": engine}))
    options = auto.LocalWorkspaceOptions(work_dir=str(fleet), env_vars=env, pulumi_command=pulumi_command())
    lab_db.set_admin_password(auto.create_or_select_stack("vault", work_dir=str(fleet), opts=options), password)
