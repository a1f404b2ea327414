"""Vault Transit state keys without servers: a cluster stack file that names its key gets it made by
the shared stack, usable by its own applier (encrypt, decrypt) and by the previewer (decrypt only);
any other key name is refused with file and field."""

from __future__ import annotations

import pulumi
import pytest
from typer.testing import CliRunner

from tests.harness import ComponentTest, use_state_key
from tests.unit.test_pipeline import pin_endpoints, shared
from vaultfleet.cli import app
from vaultfleet.fleet.engine import state_key_env
from vaultfleet.render.applier import applier_rules
from vaultfleet.render.policy import parse_rules, render_previewer
from vaultfleet.stackfile import ConfigError, Project


def test_a_cluster_names_its_own_key_and_its_applier_may_use_that_one_only(project):
    use_state_key(project, "lab-a")
    stacks = Project(project)
    lab_a, lab_b = stacks.stack("lab-a").settings, stacks.stack("lab-b").settings
    assert (lab_a.state_key, lab_b.state_key) == ("vaultfleet-lab-a", None)
    transit = {path: caps for path, caps, _ in applier_rules(lab_a, "https://a:6443", "PEM") if "transit" in path}
    assert transit == {"transit/encrypt/vaultfleet-lab-a": ["update"], "transit/decrypt/vaultfleet-lab-a": ["update"]}
    assert not [p for p, _, _ in applier_rules(lab_b, "https://b:6443", "PEM") if "transit" in p]


def test_the_previewer_may_decrypt_the_cluster_keys_and_nothing_more():
    rules = parse_rules(render_previewer(shared(), state_keys=["vaultfleet-lab-a"]), "vaultfleet-previewer")
    writes = {r.path: r.capabilities for r in rules if set(r.capabilities) - {"read", "list"}}
    assert writes == {"transit/decrypt/vaultfleet-lab-a": ("update",)}


@pytest.mark.parametrize("provider", ["hashivault://vaultfleet-lab-b", "hashivault://admin", "hashivault://"])
def test_another_key_is_refused_with_file_and_field(project, provider):
    path = project / "stacks/Pulumi.lab-a.yaml"
    path.write_text(f"secretsprovider: {provider}\n" + path.read_text())
    with pytest.raises(ConfigError) as info:
        _ = Project(project).stack("lab-a").settings
    ((source, field, message),) = info.value.problems
    assert (source, field) == ("stacks/Pulumi.lab-a.yaml", "secretsprovider")
    assert "hashivault://vaultfleet-lab-a" in message
    result = CliRunner().invoke(app, ["validate", "lab-a"])
    assert result.exit_code != 0 and "secretsprovider" in result.output


def test_the_engine_gets_the_fleet_vault_and_the_callers_token_for_the_key():
    env = {"VAULT_TOKEN": "t"}
    assert state_key_env(env, None, "https://v:8200") == env  # the passphrase: nothing added
    got = state_key_env(env, "hashivault://vaultfleet-x", "https://v:8200")
    assert (got["VAULT_SERVER_URL"], got["VAULT_SERVER_TOKEN"]) == ("https://v:8200", "t")
    mine = {"VAULT_TOKEN": "t", "VAULT_SERVER_TOKEN": "own"}
    assert state_key_env(mine, "hashivault://vaultfleet-x", "https://v:8200")["VAULT_SERVER_TOKEN"] == "own"


class TestStateKeys(ComponentTest):
    def test_the_shared_stack_makes_each_named_key_kept_and_not_deletable(self):
        import tempfile
        from pathlib import Path

        from components import SharedVault
        from tests.harness import copy_project_files
        from vaultfleet.program import args as program

        root = copy_project_files(Path(tempfile.mkdtemp()))
        pin_endpoints(root)
        use_state_key(root, "lab-a")

        @pulumi.runtime.test
        def run():
            return SharedVault("fleet", program.shared_args(shared(), Project(root))).kv_mount

        run()  # returns once every registration has finished: check them all
        (key,) = self.mocks.of_type("vault:transit/secretBackendKey:SecretBackendKey")
        self.assertEqual((key.inputs["backend"], key.inputs["name"]), ("transit", "vaultfleet-lab-a"))
        self.assertFalse(key.inputs["deletionAllowed"])
        (previewer,) = [
            p for p in self.mocks.of_type("vault:index/policy:Policy") if p.inputs["name"] == "vaultfleet-previewer"
        ]
        self.assertIn('path "transit/decrypt/vaultfleet-lab-a"', previewer.inputs["policy"])
        self.assertNotIn("vaultfleet-lab-b", previewer.inputs["policy"])
