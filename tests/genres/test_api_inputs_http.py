"""An API answer given before the request body mattered (401 here, like 403, 405 or 413) leaves
the kept-alive connection usable: against gunicorn as a slot runs it, and through HAProxy.

Gunicorn drains at most 64 KB of a body the app left unread and otherwise closes a connection
its answer had just announced as keep-alive, so the client's next request on it failed. The
API now reads and discards such bodies (up to swedify.middleware.DRAIN_MAX_BYTES).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from swedify.middleware import DRAIN_MAX_BYTES
from tests.deployments.bluegreen import free_port, new_environment, running_proxy, running_slot

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUNS = 5
# Over gunicorn's own 64 KB drain, under the app's bound.
OVERSIZED = 200_000


def post_then_get(port: int, *, body_size: int, path: str = "/api/scans") -> tuple[str, str]:
    """POST a JSON body of ``body_size`` bytes, then GET /health on the same connection; the
    status lines of both answers ("" for none: the connection was closed or reset)."""
    body = b"{" + b" " * (body_size - 2) + b"}"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    first = second = ""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        reader = conn.makefile("rb")
        with contextlib.suppress(OSError):
            conn.sendall(head + body)
            first = _answer(reader)
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            second = _answer(reader)
    return first, second


def _answer(reader: socket.SocketIO) -> str:
    """Read one HTTP answer; its status line."""
    status = reader.readline().decode("latin-1").strip()
    length = 0
    while True:
        line = reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    reader.read(length)
    return status


@pytest.fixture(scope="module")
def slot_port() -> Iterator[int]:
    """Gunicorn serving this checkout exactly as a slot runs a release (gthread, keep-alive)."""
    with running_slot(
        environment=new_environment(),
        slot="blue",
        version="inputs",
        source_dir=Path(settings.BASE_DIR),
    ) as slot:
        yield slot.port


@contextlib.contextmanager
def proxy_in_front(port: int) -> Iterator[int]:
    with running_proxy(environment=new_environment(), blue_port=port, green_port=free_port()) as (
        _,
        listen_port,
    ):
        yield listen_port


def test_the_next_request_on_a_kept_alive_connection_is_answered_after_an_unread_body(slot_port):
    outcomes = [post_then_get(slot_port, body_size=OVERSIZED) for _ in range(RUNS)]

    assert outcomes == [("HTTP/1.1 401 Unauthorized", "HTTP/1.1 200 OK")] * RUNS


def test_through_haproxy_too(slot_port):
    with proxy_in_front(slot_port) as listen_port:
        outcomes = [post_then_get(listen_port, body_size=OVERSIZED) for _ in range(RUNS)]

    assert [second for _, second in outcomes] == ["HTTP/1.1 200 OK"] * RUNS
    assert all(first.endswith("401 Unauthorized") for first, _ in outcomes), outcomes


DRAIN_MIDDLEWARE = "swedify.middleware.RequestBodyDrainMiddleware"


@pytest.mark.skipif(
    DRAIN_MIDDLEWARE not in settings.MIDDLEWARE, reason=f"{DRAIN_MIDDLEWARE} is not installed"
)
def test_outside_the_api_too_once_the_drain_middleware_is_installed(slot_port):
    """A page answered before its body was read (here CSRF's 403 on sign-out)."""
    outcomes = [
        post_then_get(slot_port, body_size=OVERSIZED, path="/auth/logout") for _ in range(RUNS)
    ]

    assert outcomes == [("HTTP/1.1 403 Forbidden", "HTTP/1.1 200 OK")] * RUNS


def test_negative_control_a_body_beyond_the_drain_bound_still_loses_the_connection(slot_port):
    """The harness sees the failure it guards against: a body the app does not drain (over
    DRAIN_MAX_BYTES) makes gunicorn close the connection, and the second request is lost."""
    first, second = post_then_get(slot_port, body_size=DRAIN_MAX_BYTES + 100_000)

    assert second == ""
    assert first in ("", "HTTP/1.1 401 Unauthorized")
