"""Fixtures of every session, unit and lab. The helpers the tests share are in tests/harness/
(`from tests.harness import edit_stack`); this file and the other conftest.py files hold fixtures only.
"""

from __future__ import annotations

import pytest

from tests.harness.project import tracked_changes


@pytest.fixture(scope="session", autouse=True)
def checkout_left_as_found():
    """The suite leaves the repository's tracked files as it found them (tests work on copies, the
    lab writes outside the checkout): compared at the start and the end of every session."""
    before = tracked_changes()
    yield
    after = tracked_changes()
    assert after == before, "the test session changed tracked files of the repository:\n" + after[:2000]
