"""Is the fleet's Vault able to serve a run? Asked before and after each stack's run, so a fleet run
with Vault down or sealed says so per stack instead of dumping provider errors; and, once per Vault
per run, whether it still accepts the run's token.

Two GETs with the standard library rather than hvac: importing hvac (and requests) costs 0.06 s of
CPU, a thirtieth of a stack's whole preview, in every vaultfleet process. TLS is configured from the
variables the Vault CLI and the Pulumi provider read (VAULT_CACERT, VAULT_CAPATH,
VAULT_CLIENT_CERT/KEY, VAULT_SKIP_VERIFY), so the check trusts what the engine run will trust.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import time
import urllib.error
import urllib.request


class _Refused(Exception):
    """Vault answered with an HTTP error status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _get(address: str, path: str, timeout: float, token: str | None = None) -> dict:
    request = urllib.request.Request(
        f"{address.rstrip('/')}/v1/{path}", headers={"X-Vault-Token": token} if token else {}
    )
    context = _tls_context() if address.startswith("https:") else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise _Refused(exc.code) from None


def _tls_context() -> ssl.SSLContext:
    env = os.environ
    context = ssl.create_default_context(cafile=env.get("VAULT_CACERT"), capath=env.get("VAULT_CAPATH"))
    if env.get("VAULT_CLIENT_CERT"):
        context.load_cert_chain(env["VAULT_CLIENT_CERT"], env.get("VAULT_CLIENT_KEY"))
    if env.get("VAULT_SKIP_VERIFY", "").lower() in ("1", "true"):
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


def _unreachable(exc: Exception) -> str | None:
    """Why the connection failed, when it did (refused, reset, a name that does not resolve)."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, socket.gaierror):
        return "its host name does not resolve"
    if isinstance(reason, ConnectionError):
        return "connection refused" if isinstance(reason, ConnectionRefusedError) else "connection failed"
    return None


def _timed_out(exc: Exception) -> bool:
    return isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError)


ELECTION_WAIT = 15.0
"""How long a fleet run waits, once per Vault, for an HA cluster to have an active node again: an
election takes a few seconds (2-4 s in the lab, docs/ha-vault.md); the provider rides through as
long itself by retrying."""


def vault_problem(address: str, timeout: float = 3.0, wait: float = 0.0) -> str | None:
    """Why Vault at `address` cannot serve a run right now (unreachable, sealed, uninitialised, no
    active node), or None. Asks the unauthenticated `sys/seal-status`, so no token is sent.

    `wait`: how long to wait out an answer that means "no active node for now" (502, 503 or 504 from
    a load balancer, or no answer within `timeout`); every other problem is reported at once.
    """
    deadline = time.monotonic() + wait
    while True:
        problem, passing = _seal_status_problem(address, timeout)
        if problem is None or not passing or time.monotonic() >= deadline:
            return problem
        time.sleep(0.5)


def _seal_status_problem(address: str, timeout: float) -> tuple[str | None, bool]:
    """(the problem, whether it may pass by itself, as an election does)."""
    try:
        status = _get(address, "sys/seal-status", timeout)
    except Exception as exc:  # noqa: BLE001 - every failure to answer is reported, the run decides
        if _timed_out(exc):
            return f"Vault at {address} did not answer within {timeout:.0f}s: check it, then rerun", True
        if why := _unreachable(exc):
            return f"Vault at {address} is unreachable ({why}): start it, then rerun", False
        if isinstance(exc, _Refused) and exc.status in _GATEWAY_ERRORS:
            # Vault itself always answers sys/seal-status; these come from a proxy in front of it.
            return (
                f"Vault at {address} answered HTTP {exc.status}: no server behind that address can serve "
                f"({_NO_ACTIVE_NODE}): rerun once it has one"
            ), True
        answer = f"HTTP {exc.status}" if isinstance(exc, _Refused) else getattr(exc, "reason", None) or exc
        return f"Vault at {address} answered sys/seal-status with an error: {answer}", False
    if not status.get("initialized", True):
        return f"Vault at {address} is not initialised: `vault operator init`, then rerun", False
    if status.get("sealed"):
        return f"Vault at {address} is sealed: unseal it (`vault operator unseal`), then rerun", False
    return None, False


class RunChecks:
    """The Vault checks of one fleet run, per Vault address: its token asked once; a short outage
    (`vault_problem`'s `wait`) waited out at most once, so a Vault that stays away fails the
    remaining stacks at once instead of each waiting again."""

    def __init__(self, addresses: set[str], token: str | None, wait: float = ELECTION_WAIT) -> None:
        self.token_problems = {address: token_problem(address, token) for address in sorted(addresses)}
        self._wait = dict.fromkeys(addresses, wait)

    def before_stack(self, address: str) -> str | None:
        problem = self.token_problems.get(address) or vault_problem(address, wait=self._wait.get(address, 0.0))
        if problem:
            self._wait[address] = 0.0
        return problem


_GATEWAY_ERRORS = (502, 503, 504)
_NO_ACTIVE_NODE = (
    "an HA cluster without an active node: a leader election takes seconds; "
    "longer, it lost its quorum or every node is sealed or down"
)


def unavailable_during_run(address: str, engine_output: str) -> str | None:
    """Why an engine run failed when Vault answers again by the time it is asked: the provider's
    errors show the run's requests to `address` refused or answered 502/503/504 (a restart, or a
    leader election behind a load balancer). One line, ahead of the per-resource errors."""
    pattern = rf"URL: [A-Z]+ {re.escape(address.rstrip('/'))}/\S*\s+Code: (?P<code>50[234])"
    if match := re.search(pattern, engine_output):
        why = f"HTTP {match['code']}"
    elif re.search(rf"{re.escape(address.rstrip('/'))}/[^\n]*connection refused", engine_output):
        why = "connection refused"
    else:
        return None
    return (
        f"Vault at {address} was unavailable during the run ({why}: a restart, or {_NO_ACTIVE_NODE}); "
        "it answers now: rerun"
    )


def token_problem(address: str, token: str | None, timeout: float = 5.0) -> str | None:
    """Why Vault at `address` will not accept `token` (unset, expired, revoked, unknown), or None.

    One authenticated call, `auth/token/lookup-self`, which the default policy grants every token.
    None as well when Vault cannot be asked (down, sealed): `vault_problem` reports that per stack.
    """
    if not token:
        return "no Vault token: set VAULT_TOKEN (vaultfleet reads no other token source)"
    try:
        _get(address, "auth/token/lookup-self", timeout, token)
    except _Refused as exc:
        if exc.status != 403:
            return None  # sealed (503), standby trouble: the per-stack health check says which
        return (
            f"Vault at {address} refused the token in VAULT_TOKEN (auth/token/lookup-self: permission denied): "
            "it is expired, revoked or unknown, or lacks the default policy; get a new one, then rerun"
        )
    except (OSError, ValueError):
        return None  # unreachable, or not Vault's JSON: the per-stack health check says which
    return None
