"""The engine reads a stack's values from Pulumi.yaml's stackConfigDir; every check vaultfleet makes
(validate, the access review, stack selection) reads stacks/. Another directory is refused."""

from __future__ import annotations

import shutil

import yaml
from typer.testing import CliRunner

from vaultfleet.cli import app

runner = CliRunner()


def test_a_stack_config_dir_other_than_stacks_is_refused(project):
    assert runner.invoke(app, ["validate"]).exit_code == 0  # control
    shutil.copytree(project / "stacks", project / "stacks-eu")
    document = yaml.safe_load((project / "Pulumi.yaml").read_text())
    document["stackConfigDir"] = "stacks-eu"
    (project / "Pulumi.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 2, result.output
    assert "Pulumi.yaml: stackConfigDir: must be `stacks`" in " ".join(result.output.split())
