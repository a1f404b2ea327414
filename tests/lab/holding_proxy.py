"""A loopback HTTP proxy in front of the lab's Vault that holds back the answer to one chosen write.

The write reaches Vault at once (the object exists), but its answer is kept until `release()`: the
provider, and the engine behind it, are still waiting for it. Killing the engine then leaves the
exact state an interrupted run can leave: the object in Vault, a pending create in the checkpoint.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse


class HoldingProxy:
    def __init__(self, upstream: str):
        target = urlparse(upstream)
        self.hold: Callable[[str, str], bool] = lambda method, path: False
        """(method, path) -> hold the answer to this request? Holds the first match only."""
        self.held = threading.Event()
        self._release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upstream_conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                upstream_conn.request(self.command, self.path, body, headers)
                answer = upstream_conn.getresponse()
                data = answer.read()
                if not proxy.held.is_set() and proxy.hold(self.command, self.path):
                    proxy.held.set()
                    proxy._release.wait(300)
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_LIST = do_PATCH = do_HEAD = _forward

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def reset(self, hold: Callable[[str, str], bool]) -> None:
        self.hold = hold
        self.held.clear()
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
