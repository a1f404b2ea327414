"""Fixtures of every session, unit and lab. The helpers the tests share are in tests/harness/
(`from tests.harness import edit_stack`); this file and the other conftest.py files hold fixtures only.
"""

from __future__ import annotations

import pytest

# The unit modules (tests/unit/test_*.py) and tests/bad_inputs.py import these from here still; kept
# until they import tests.harness. Nothing may be added: helpers belong in tests/harness/.
from tests.harness import add_team_role, copy_project_files, edit_stack, use_state_key  # noqa: F401
from tests.harness.project import tracked_changes


@pytest.fixture(scope="session", autouse=True)
def checkout_left_as_found():
    """The suite leaves the repository's tracked files as it found them (tests work on copies, the
    lab writes outside the checkout): compared at the start and the end of every session."""
    before = tracked_changes()
    yield
    after = tracked_changes()
    assert after == before, "the test session changed tracked files of the repository:\n" + after[:2000]
