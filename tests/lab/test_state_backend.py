"""The fleet on Pulumi's PostgreSQL state backend (the lab's PostgreSQL), shared by concurrent
processes: a second run that reaches for a stack while another holds it fails at once, naming the
holder, and nothing is lost or corrupted (issue 16).

Not marked `server`: the lock lives in the state backend, which is the same whatever Vault runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import psycopg
import pytest
import yaml

from tests.harness import REPO, copy_project, destroy_stacks, edit_stack
from vaultfleet.lab import state_backend

pytestmark = pytest.mark.lab
CLI = str(REPO / ".venv/bin/vaultfleet")
DATABASE = "pulumi_lock_test"


@pytest.fixture(scope="module")
def backend_env(lab, lab_env):
    if lab.postgres is None:
        pytest.fail("the lab runs no PostgreSQL")
    state_backend.ensure_database(lab.postgres, DATABASE)
    return {
        **lab_env,
        "PULUMI_BACKEND_URL": state_backend.state_backend_url(lab.postgres, DATABASE),
        "PGPASSWORD": lab.postgres.password(),
    }


@pytest.fixture(scope="module")
def project(lab, backend_env, tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("pgstate"))
    # Enough roles that an `up` holds the stack's lock for a few seconds.
    roles = [
        {
            "name": f"r{i}",
            "serviceAccounts": ["app"],
            "namespaces": [f"ns{i}"],
            "policies": ["kv-read"],
            "audience": "vault",
        }
        for i in range(12)
    ]
    edit_stack(project, "lab-a", lambda c: c["vaultfleet:roles"].extend(roles))
    done = vaultfleet(project, backend_env, "up", "vault", "lab-a")
    assert done.returncode == 0, done.stdout + done.stderr
    yield project
    destroy_stacks(project, backend_env, ["lab-a", "vault"])


def vaultfleet(project, env, *args: str, wait: bool = True):
    argv = [CLI, *args]
    env = {**env, "VAULTFLEET_PROJECT": str(project)}
    if not wait:
        return subprocess.Popen(argv, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=600)


def locks(lab) -> list[str]:
    with psycopg.connect(**lab.postgres.connect_kwargs(database=DATABASE)) as conn:
        rows = conn.execute("SELECT key FROM pulumi_state WHERE key LIKE '%%/locks/%%lab-a/%%'").fetchall()
    return [r[0] for r in rows]


def test_the_fleet_runs_on_the_postgresql_backend_and_keeps_its_state_there(lab, project):
    with psycopg.connect(**lab.postgres.connect_kwargs(database=DATABASE)) as conn:
        keys = [r[0] for r in conn.execute("SELECT key FROM pulumi_state").fetchall()]
    assert any(k.endswith("lab-a.json") for k in keys) and any(k.endswith("vault.json") for k in keys), keys
    # No password in the backend URL: an error naming the backend cannot leak it.
    assert lab.postgres.password() not in state_backend.state_backend_url(lab.postgres, DATABASE)


def test_a_second_run_on_a_locked_stack_fails_naming_the_holder_and_nothing_is_lost(lab, project, backend_env):
    # Something to do: a changed ttl on every role, so the first run holds the lock while it writes.
    edit_stack(project, "lab-a", lambda c: [r.update(ttl="50m") for r in c["vaultfleet:roles"]])
    first = vaultfleet(project, backend_env, "up", "lab-a", "--format", "json", wait=False)
    deadline = time.monotonic() + 60
    while not locks(lab):
        assert first.poll() is None, "the first run ended before it was seen holding the lock"
        assert time.monotonic() < deadline, "the first run never took the stack's lock"
        time.sleep(0.05)
    second = vaultfleet(project, backend_env, "up", "lab-a", "--format", "json")
    out, _ = first.communicate(timeout=600)
    assert first.returncode == 0, out
    assert second.returncode == 1, second.stdout + second.stderr
    (refused,) = json.loads(second.stdout)
    assert "locked by a run that may still be going" in refused["error"], refused
    assert f"on {os.uname().nodename}" in refused["error"] and "pid " in refused["error"], refused
    # Nothing lost: the first run's changes are all in, the lock is gone, and the state is whole.
    assert not locks(lab)
    (applied,) = json.loads(out)
    roles = yaml.safe_load((project / "stacks/Pulumi.lab-a.yaml").read_text())["config"]["vaultfleet:roles"]
    assert applied["changes"].get("update") == len(roles), applied  # every role's ttl
    check = vaultfleet(project, backend_env, "preview", "lab-a", "--expect-no-changes")
    assert check.returncode == 0, check.stdout + check.stderr
