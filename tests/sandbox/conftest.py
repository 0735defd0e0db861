"""Fixtures for the sandbox tests: a fresh sandbox per test and a small HTTP client.

The client uses only the standard library and never follows redirects or proxies, so every
assertion is about what the sandbox itself answered over HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.error import HTTPError
from urllib.parse import parse_qs, urlencode, urlsplit
from urllib.request import HTTPRedirectHandler, ProxyHandler, Request, build_opener

import pytest

from sandbox.testing import RunningSandbox, running_sandbox

REDIRECT_URI = "http://127.0.0.1:8000/auth/spotify/callback"


class _NoRedirect(HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = build_opener(ProxyHandler({}), _NoRedirect())


@dataclass
class Answer:
    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    @property
    def location_query(self) -> dict[str, str]:
        query = parse_qs(urlsplit(self.headers["Location"]).query)
        return {name: values[0] for name, values in query.items()}


def http(
    method: str,
    url: str,
    *,
    token: str | None = None,
    json_body: Any = None,
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    data = None
    all_headers = dict(headers or {})
    if json_body is not None:
        data = json.dumps(json_body).encode()
        all_headers["Content-Type"] = "application/json"
    if form is not None:
        data = urlencode(form).encode()
        all_headers["Content-Type"] = "application/x-www-form-urlencoded"
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    request = Request(url, data=data, method=method, headers=all_headers)
    try:
        with _opener.open(request, timeout=20) as response:
            return Answer(response.status, response.headers, response.read())
    except HTTPError as error:
        return Answer(error.code, error.headers, error.read())


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_query(client_id: str = "swedify-sandbox", **extra: str) -> dict[str, str]:
    query = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "state": "state-123",
        "scope": "user-library-read playlist-modify-private",
    }
    query.update(extra)
    return query


class Api:
    """Calls /v1 of a sandbox as one signed-in user."""

    def __init__(self, sandbox: RunningSandbox, token: str) -> None:
        self.sandbox = sandbox
        self.token = token

    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.sandbox.api_url}{path}"

    def get(self, path: str) -> Answer:
        return http("GET", self.url(path), token=self.token)

    def post(self, path: str, body: Any) -> Answer:
        return http("POST", self.url(path), token=self.token, json_body=body)

    def all_pages(self, path: str) -> list[Any]:
        items: list[Any] = []
        url: str | None = self.url(path)
        while url:
            answer = self.get(url)
            assert answer.status == 200, answer.text
            page = answer.json()
            items += page["items"]
            url = page["next"]
        return items


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
def api(sandbox: RunningSandbox) -> Api:
    """The built-in `listener`, signed in through the real PKCE flow."""
    return Api(sandbox, sandbox.login("listener")["access_token"])


def sign_in(sandbox: RunningSandbox, user_id: str, scope: str | None = None) -> Api:
    tokens = sandbox.login(user_id) if scope is None else sandbox.login(user_id, scope=scope)
    return Api(sandbox, tokens["access_token"])
