"""Fixtures of every session, unit and lab. The helpers the tests share are in tests/harness/
(`from tests.harness import edit_stack`); this file and the other conftest.py files hold fixtures only.
"""

from __future__ import annotations

import urllib.request

import pytest

from tests.harness.project import tracked_changes

# urllib's default opener reads the proxy variables once, at its first request, and keeps them;
# NO_PROXY it reads at every request. Built here, before any fixture sets the lab's closed proxy
# (lab_env's HTTP_PROXY), so a module run alone on a running lab does not keep that proxy after its
# fixture has unset NO_PROXY (its teardown then found every Vault "unreachable").
urllib.request.install_opener(urllib.request.build_opener())


@pytest.fixture(scope="session", autouse=True)
def checkout_left_as_found():
    """The suite leaves the repository's tracked files as it found them (tests work on copies, the
    lab writes outside the checkout): compared at the start and the end of every session."""
    before = tracked_changes()
    yield
    after = tracked_changes()
    assert after == before, "the test session changed tracked files of the repository:\n" + after[:2000]
