"""The control API answers only requests a page in the developer's browser cannot forge: a
loopback Host (no DNS rebinding) and JSON for every request that changes the sandbox."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.testing import RunningSandbox, running_sandbox


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


def send(
    sandbox: RunningSandbox,
    method: str,
    path: str,
    *,
    host: str | None = None,
    content_type: str | None = None,
    body: bytes = b"",
) -> tuple[int, Any]:
    port = int(sandbox.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host if host is not None else f"127.0.0.1:{port}")
        if content_type is not None:
            connection.putheader("Content-Type", content_type)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def likes_of(sandbox: RunningSandbox) -> int:
    users = send(sandbox, "GET", "/sandbox/users")[1]["users"]
    return next(user["tracks"] for user in users if user["id"] == "listener")


@pytest.mark.parametrize("host", ["attacker.example:8900", "127.0.0.1.attacker.example", ""])
def test_a_request_addressed_to_another_host_name_is_refused(
    sandbox: RunningSandbox, host: str
) -> None:
    status, answer = send(sandbox, "GET", "/sandbox/users", host=host)
    assert status == 403
    assert "loopback Host" in answer["error"]


def test_a_rebound_host_name_cannot_change_the_sandbox(sandbox: RunningSandbox) -> None:
    before = likes_of(sandbox)
    status, _ = send(
        sandbox,
        "POST",
        "/sandbox/users/listener/likes",
        host="attacker.example:8900",
        content_type="application/json",
        body=b'{"count": 3}',
    )
    assert status == 403
    assert likes_of(sandbox) == before


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost:8900", "[::1]:8900", "127.8.9.10:1"])
def test_loopback_host_names_are_answered(sandbox: RunningSandbox, host: str) -> None:
    status, answer = send(sandbox, "GET", "/sandbox/users", host=host)
    assert status == 200
    assert "listener" in [user["id"] for user in answer["users"]]


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
def test_a_state_change_that_is_not_json_is_refused(
    sandbox: RunningSandbox, content_type: str | None
) -> None:
    # What a cross-origin form or a no-cors fetch from any web page can send.
    before = likes_of(sandbox)
    status, answer = send(
        sandbox,
        "POST",
        "/sandbox/users/listener/likes",
        content_type=content_type,
        body=b'{"count": 3}',
    )
    assert status == 415
    assert "application/json" in answer["error"]
    assert likes_of(sandbox) == before


def test_a_reset_without_a_body_is_refused_unless_it_says_json(sandbox: RunningSandbox) -> None:
    sandbox.add_likes("listener", 3)
    liked = likes_of(sandbox)
    assert send(sandbox, "POST", "/sandbox/reset")[0] == 415
    assert likes_of(sandbox) == liked
    status, _ = send(sandbox, "POST", "/sandbox/reset", content_type="application/json")
    assert status == 200
    assert likes_of(sandbox) == liked - 3


def test_a_json_state_change_from_loopback_is_applied(sandbox: RunningSandbox) -> None:
    before = likes_of(sandbox)
    status, answer = send(
        sandbox,
        "POST",
        "/sandbox/users/listener/likes",
        content_type="application/json; charset=utf-8",
        body=b'{"count": 3}',
    )
    assert status == 201
    assert answer["total"] == before + 3
    assert likes_of(sandbox) == before + 3
