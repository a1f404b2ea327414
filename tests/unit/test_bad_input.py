"""The bad-input corpus through `vaultfleet validate`: exit 2, one finding naming the file, the field
and the case's reason (its message fragment), nothing written."""

import json

import pytest
from typer.testing import CliRunner

from tests.bad_inputs import CASES, SHARED_CASES
from vaultfleet.cli import app


def test_corpus_is_large_enough():
    assert len(CASES) >= 40
    assert len({c.name for c in CASES + SHARED_CASES}) == len(CASES) + len(SHARED_CASES)
    # Each case names its reason: a fragment of the message beyond the file and field.
    assert all(c.message.strip() and c.message not in (c.file, c.field) for c in CASES + SHARED_CASES)


@pytest.mark.parametrize("case", CASES + SHARED_CASES, ids=[c.name for c in CASES + SHARED_CASES])
def test_validate_rejects(case, project):
    case.apply(project)
    before = sorted(str(p.relative_to(project)) for p in project.rglob("*"))

    result = CliRunner().invoke(app, ["validate", case.stack, "--format", "json"])

    assert result.exit_code == 2, result.output
    findings = [f for f in json.loads(result.stdout)["findings"] if f["severity"] == "error"]
    # One finding names all three: a refusal of the same field for another reason does not count.
    assert any(
        f["file"].endswith(case.file)
        and (case.field in f["field"] or case.field in f["message"] or case.field in f["file"])
        and case.message in f["message"]
        for f in findings
    ), (case.message, findings)
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*")) == before  # nothing written
