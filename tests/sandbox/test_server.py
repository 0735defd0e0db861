"""The HTTP server itself: keep-alive speed, clean shutdown, local binding."""

from __future__ import annotations

import http.client
import json
import socket
import time
from urllib.parse import urlsplit

import pytest

from sandbox.testing import RunningSandbox, running_sandbox


def test_keep_alive_requests_do_not_wait_for_delayed_acks(sandbox: RunningSandbox) -> None:
    token = sandbox.issue_token("listener")["access_token"]
    connection = http.client.HTTPConnection(urlsplit(sandbox.url).netloc, timeout=10)
    started = time.monotonic()
    for _ in range(50):
        connection.request("GET", "/v1/me", headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        assert json.loads(response.read())["id"] == "listener"
    connection.close()
    # With Nagle's algorithm on, each answer would wait ~40 ms: 2 s for 50.
    assert time.monotonic() - started < 1.0


def test_it_binds_to_loopback_and_stops_with_idle_connections_open() -> None:
    with running_sandbox() as sandbox:
        assert sandbox.server.server_address[0] == "127.0.0.1"
        idle = http.client.HTTPConnection(urlsplit(sandbox.url).netloc, timeout=10)
        idle.request("GET", "/sandbox/stats")
        assert idle.getresponse().read()
        started = time.monotonic()
    assert time.monotonic() - started < 2
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", sandbox.server.server_address[1]), timeout=2)
