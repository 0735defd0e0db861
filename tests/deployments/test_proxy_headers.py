"""What HAProxy adds and refuses in front of the slots: the client's address, huge bodies."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.deployments.bluegreen import new_environment, running_proxy

pytestmark = pytest.mark.integration


class _Echo(BaseHTTPRequestHandler):
    """Answers /health, and any other GET with the X-Forwarded-For it received."""

    def do_GET(self) -> None:
        # Repeated header lines joined with commas, as gunicorn hands them to Django.
        forwarded = ", ".join(self.headers.get_all("X-Forwarded-For") or [])
        body = json.dumps({"forwarded": forwarded}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def echo_proxy() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        with running_proxy(
            environment=new_environment(), blue_port=port, green_port=port, live_slot="blue"
        ) as (_, listen_port):
            yield listen_port
    finally:
        server.shutdown()
        server.server_close()


def ask(port: int, method: str = "GET", headers: dict[str, str] | None = None) -> tuple:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, "/anything", headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_the_app_sees_the_clients_address_last_whatever_the_client_claims() -> None:
    with echo_proxy() as port:
        plain = ask(port)
        spoofed = ask(port, headers={"X-Forwarded-For": "198.51.100.7"})

    assert json.loads(plain[1]) == {"forwarded": "127.0.0.1"}
    # The client's own claim stays in front; the rightmost entry is the address HAProxy saw,
    # which is what genres.limits.client_address takes.
    assert json.loads(spoofed[1]) == {"forwarded": "198.51.100.7, 127.0.0.1"}


def test_a_body_larger_than_the_app_would_read_is_refused_at_the_proxy() -> None:
    with echo_proxy() as port:
        refused = ask(port, "POST", headers={"Content-Length": str(2 * 1024 * 1024)})
        small = ask(port, "POST", headers={"Content-Length": "0"})

    assert refused[0] == 413
    assert small[0] == 200
