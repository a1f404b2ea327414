"""The fleet's Vault health checks against a real HTTP server on 127.0.0.1 answering as Vault would."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vaultfleet.fleet.health import RunChecks, token_problem, unavailable_during_run, vault_problem

GOOD_TOKEN = "hvs.good"


class FakeVault(BaseHTTPRequestHandler):
    seal_status: tuple[int, dict] = (200, {"initialized": True, "sealed": False})

    def do_GET(self):  # noqa: N802 - the http.server API
        if self.path == "/v1/sys/seal-status":
            status, body = self.server.seal_status
        elif self.path == "/v1/auth/token/lookup-self":
            good = self.headers.get("X-Vault-Token") == GOOD_TOKEN
            status, body = (200, {"data": {}}) if good else (403, {"errors": ["permission denied"]})
        else:
            status, body = 404, {"errors": []}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def vault():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeVault)
    server.seal_status = (200, {"initialized": True, "sealed": False})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_healthy_vault_and_an_accepted_token_are_no_problem(vault):
    _, address = vault
    assert vault_problem(address) is None
    assert token_problem(address, GOOD_TOKEN) is None


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ((200, {"initialized": True, "sealed": True}), "is sealed: unseal it"),
        ((200, {"initialized": False, "sealed": True}), "is not initialised"),
        ((500, {"errors": ["boom"]}), "answered sys/seal-status with an error: HTTP 500"),
        # What a load balancer answers with no active node behind it (HAProxy: 503).
        ((503, {}), "answered HTTP 503: no server behind that address can serve (an HA cluster without an active"),
    ],
)
def test_seal_status_answers_name_the_cause(vault, answer, expected):
    server, address = vault
    server.seal_status = answer
    assert expected in (vault_problem(address) or "")


def test_a_run_waits_out_a_load_balancer_without_an_active_node_once(vault):
    """A 503 from a balancer (an election in progress) is waited for, up to `wait`; once a wait has
    run out, the run's later stacks are told at once."""
    server, address = vault
    server.seal_status = (503, {})
    threading.Timer(1.0, lambda: setattr(server, "seal_status", (200, {"initialized": True}))).start()
    assert vault_problem(address, wait=10) is None

    server.seal_status = (503, {})
    checks = RunChecks({address}, GOOD_TOKEN, wait=0.6)
    started = time.monotonic()
    assert "answered HTTP 503" in (checks.before_stack(address) or "")
    assert "answered HTTP 503" in (checks.before_stack(address) or "")
    assert 0.6 <= time.monotonic() - started < 2.5  # waited once, not twice


def test_a_sealed_vault_is_not_waited_for(vault):
    server, address = vault
    server.seal_status = (200, {"initialized": True, "sealed": True})
    started = time.monotonic()
    assert "is sealed" in (vault_problem(address, wait=10) or "")
    assert time.monotonic() - started < 2


def test_a_refused_token_is_named_and_a_missing_one_too(vault):
    _, address = vault
    assert "refused the token in VAULT_TOKEN" in (token_problem(address, "hvs.revoked") or "")
    assert "no Vault token" in (token_problem(address, None) or "")


def test_a_vault_nobody_listens_for_is_unreachable_and_leaves_the_token_question_open():
    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"http://127.0.0.1:{port}"
    assert "is unreachable (connection refused)" in (vault_problem(address) or "")
    assert token_problem(address, GOOD_TOKEN) is None  # the per-stack check reports the outage


# The provider's error for a request the balancer answered 503 during a leader election (as a
# fleet run printed it, trimmed), and for a Vault restarted under the run.
ELECTION = """    error: failed to lookup token, err=Error making API request.

    URL: GET http://127.0.0.1:18800/v1/auth/token/lookup-self
    Code: 503. Raw Message:
"""
RESTART = (
    'error: Get "http://127.0.0.1:18800/v1/sys/mounts/fleet-kv": dial tcp 127.0.0.1:18800: connect: connection refused'
)


def test_a_run_that_met_vault_unavailable_is_named_in_one_line():
    address = "http://127.0.0.1:18800"
    assert "unavailable during the run (HTTP 503: a restart, or an HA cluster without an active node" in (
        unavailable_during_run(address, ELECTION) or ""
    )
    assert "(connection refused:" in (unavailable_during_run(address, RESTART) or "")
    # Another Vault's trouble, or another failure, is not this Vault's.
    assert unavailable_during_run("http://127.0.0.1:18200", ELECTION) is None
    assert unavailable_during_run(address, ELECTION.replace("503", "403")) is None
