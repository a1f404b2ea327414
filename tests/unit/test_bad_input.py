"""The bad-input corpus through `vaultfleet validate`: exit 2, file and field named, nothing written."""

import json

import pytest
from typer.testing import CliRunner

from tests.bad_inputs import CASES, SHARED_CASES
from vaultfleet.cli import app


def test_corpus_is_large_enough():
    assert len(CASES) >= 40
    assert len({c.name for c in CASES + SHARED_CASES}) == len(CASES) + len(SHARED_CASES)


@pytest.mark.parametrize("case", CASES + SHARED_CASES, ids=[c.name for c in CASES + SHARED_CASES])
def test_validate_rejects(case, project):
    case.apply(project)
    before = sorted(str(p.relative_to(project)) for p in project.rglob("*"))

    result = CliRunner().invoke(app, ["validate", case.stack, "--format", "json"])

    assert result.exit_code == 2, result.output
    findings = [f for f in json.loads(result.stdout)["findings"] if f["severity"] == "error"]
    assert any(
        f["file"].endswith(case.file)
        and (case.field in f["field"] or case.field in f["message"] or case.field in f["file"])
        for f in findings
    ), findings
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*")) == before  # nothing written
