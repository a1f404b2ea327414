"""A fleet repository made by `vaultfleet init`, run on the lab from the wheel (issue 30): init,
onboard a cluster, `up` the shared stack and the cluster, a real login, a preview that finds nothing
to change, destroy. The CLI and the Pulumi program both run from the wheel installed on its own
(`install_wheel`: first on the path, before this checkout's editable install), on the fleet's own
files; the program is the one `__main__.py` calls, the same few lines as this repository's.

Marked `lab` only, not `server`: what this module adds to the lab tests is the package and the
files init writes (the same on either server); the up and the login themselves are
server-dependent, and test_project.py covers them on both servers with the same program. On
lab-c, which no other module uses while this one runs (the modules run one after another; the two
that use lab-c, test_auth_modes and test_crash, destroy what they made).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.harness import REPO, built_wheel, destroy_stacks, install_wheel, login, wheel_cli
from vaultfleet.fleet.engine import pulumi_command

pytestmark = [pytest.mark.lab]
CLUSTER = "lab-c"


def test_a_fleet_init_wrote_comes_up_from_the_wheel_and_logs_in(lab, lab_env, tmp_path):
    env = {**lab_env, **install_wheel(built_wheel(tmp_path / "wheel"), tmp_path / "site")}
    vaultfleet = wheel_cli(env, tmp_path / "site")  # the wheel's vaultfleet runs, not this checkout's

    fleet = tmp_path / "fleet"
    vaultfleet("init", str(fleet), "--vault-address", lab.vault_addr, cwd=tmp_path)
    # The fleet's virtualenv is this one (nothing installed): its SDKs and the wheel on PYTHONPATH.
    (fleet / ".venv").symlink_to(REPO / ".venv")
    vaultfleet("onboard", CLUSTER, "--context", CLUSTER, cwd=fleet)
    try:
        # A new fleet is in the per-cluster layout: the cluster's access stack writes its mount.
        vaultfleet("up", "vault", f"vault.{CLUSTER}", CLUSTER, cwd=fleet)

        # A real login at the cluster's mount, with the policy the fleet's own template rendered.
        client = login(lab, CLUSTER)
        assert "k8s-lab-c-kv-read" in client.auth.token.lookup_self()["data"]["policies"]

        # The program the engine ran was the wheel's: the inputs digest it exported names the
        # installed package's files, as the wheel's CLI computes it, not this checkout's.
        outputs = pulumi_command().run(["stack", "output", "--json", "--stack", CLUSTER], str(fleet), env).stdout
        digest = subprocess.run(
            [
                sys.executable,
                "-c",
                "from vaultfleet.fleet.inputs import inputs_fingerprint as f; from vaultfleet.stackfile import Project; "
                f"print(f(Project('.').stack('{CLUSTER}')))",
            ],
            cwd=fleet,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert json.loads(outputs)["vaultfleet_inputs"] == digest

        # Converged: a preview (with its refresh) finds nothing to change.
        vaultfleet("preview", "vault", f"vault.{CLUSTER}", CLUSTER, "--expect-no-changes", cwd=fleet)
    finally:
        destroy_stacks(fleet, env, [CLUSTER, f"vault.{CLUSTER}", "vault"])
