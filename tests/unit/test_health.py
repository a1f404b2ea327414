"""The fleet's Vault health checks against a real HTTP server on 127.0.0.1 answering as Vault would."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vaultfleet.fleet.health import token_problem, vault_problem

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
    ],
)
def test_seal_status_answers_name_the_cause(vault, answer, expected):
    server, address = vault
    server.seal_status = answer
    assert expected in (vault_problem(address) or "")


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
