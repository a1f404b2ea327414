"""One way to assert a refusal in the lab tests: the call fails with the exception *and* the reason
named, so a misspelt path, a missing role or an unwritten policy cannot pass for the refusal a test
names (Vault answers 403 "permission denied" to all of those alike, and a login refused for its
audience looks like any other VaultError).

A refusal test built on it reads: the same identity's legitimate request succeeds first (positive
control), then `refused(...)` with the reason, then the target re-read unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import hvac

PERMISSION_DENIED = "permission denied"


def refused(call: Callable[[], object], reason: str, exception: type[Exception] = hvac.exceptions.VaultError) -> str:
    """Run `call`; it must raise `exception` whose message matches `reason` (a regular expression,
    case-insensitive). Returns the message, for further checks."""
    try:
        call()
    except exception as exc:
        message = str(exc)
        assert re.search(reason, message, re.IGNORECASE), f"refused, but not for {reason!r}: {message}"
        return message
    raise AssertionError(f"not refused (expected {exception.__name__} for {reason!r})")


def denied(call: Callable[[], object]) -> str:
    """`call` is refused by Vault's ACL: 403 permission denied."""
    return refused(call, PERMISSION_DENIED, hvac.exceptions.Forbidden)
