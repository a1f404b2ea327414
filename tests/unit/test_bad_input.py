"""The bad-input corpus through `vaultfleet validate`: exit 2, file and field named, nothing written."""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.bad_inputs import CASES, BadInput
from vaultfleet.cli import app

REPO = Path(__file__).resolve().parents[2]


def apply(case: BadInput, project: Path) -> None:
    if case.policy is not None:
        (project / case.file).write_text(case.policy)
        return
    path = project / case.file
    doc = yaml.safe_load(path.read_text())
    case.edit(doc["config"])
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_corpus_is_large_enough():
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_validate_rejects(case, tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "Pulumi.yaml", project)
    shutil.copytree(REPO / "stacks", project / "stacks")
    shutil.copytree(REPO / "policies", project / "policies")
    apply(case, project)
    before = sorted(str(p.relative_to(project)) for p in project.rglob("*"))
    monkeypatch.setenv("VAULTFLEET_PROJECT", str(project))

    result = CliRunner().invoke(app, ["validate", "lab-a", "--format", "json"])

    assert result.exit_code == 2, result.output
    findings = [f for f in json.loads(result.stdout)["findings"] if f["severity"] == "error"]
    assert any(
        f["file"].endswith(case.file)
        and (case.field in f["field"] or case.field in f["message"] or case.field in f["file"])
        for f in findings
    ), findings
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*")) == before  # nothing written
