"""Fixtures of the listener-side tests: a sandbox per test, Django pointed at it, sign-in
through the sandbox's authorize shortcut, and a recorder instead of the Celery broker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.error import HTTPError
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from urllib.request import HTTPRedirectHandler, ProxyHandler, build_opener

import pytest

from sandbox.testing import RunningSandbox, running_sandbox


class _NoRedirect(HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = build_opener(ProxyHandler({}), _NoRedirect())

# Small libraries keep the integration tests fast; `listener` (600 tracks) is the default.
SMALL_USER = {"id": "small", "tracks": 120, "artists": 60, "artist_offset": 7_000}


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox(users=[SMALL_USER]) as running:
        yield running


@pytest.fixture(scope="module")
def module_sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
def adapter_sandbox(module_sandbox: RunningSandbox, settings: Any) -> RunningSandbox:
    """The Spotify adapter tests' sandbox: one per test module, reset before each test, with
    Django's Spotify settings (credentials included) pointing at it."""
    from genres.spotify import forget_batch_artists_memory

    module_sandbox.reset()
    settings.SPOTIFY_API_URL = module_sandbox.api_url
    settings.SPOTIFY_ACCOUNTS_URL = module_sandbox.accounts_url
    settings.SPOTIFY_CLIENT_ID = module_sandbox.client_id
    settings.SPOTIFY_CLIENT_SECRET = module_sandbox.client_secret
    settings.SPOTIFY_CONCURRENCY = 8
    forget_batch_artists_memory()
    return module_sandbox


@pytest.fixture
def spotify_at_sandbox(settings: Any, sandbox: RunningSandbox, monkeypatch: Any) -> Any:
    """Django's Spotify settings point at the sandbox, with a budget and backoff for tests."""
    from genres import spotify

    settings.SPOTIFY_ACCOUNTS_URL = sandbox.accounts_url
    settings.SPOTIFY_API_URL = sandbox.api_url
    # The production budget (150 per 30 s, smoothed) would make a scan of hundreds of
    # artists take a minute; the sandbox's own limit is what the rate-limit tests use.
    settings.SPOTIFY_RATE_LIMIT = 1_000_000
    settings.SPOTIFY_CONCURRENCY = 8
    monkeypatch.setattr(spotify, "DEFAULT_BACKOFF_BASE", 0.001)
    return sandbox


@pytest.fixture
def enqueued(monkeypatch: Any) -> list[str]:
    """Scan ids handed to Celery (nothing reaches a broker); tests run them directly."""
    from genres import tasks

    queued: list[str] = []
    monkeypatch.setattr(tasks.scan_run, "delay", lambda scan_id: queued.append(str(scan_id)))
    return queued


def authorize(sandbox: RunningSandbox, location: str, user: str, decision: str) -> str:
    """Follow Swedify's redirect to the sandbox's /authorize; the callback URL it answers."""
    parts = urlsplit(location)
    query = [*parse_qsl(parts.query), ("sandbox_user", user), ("sandbox_decision", decision)]
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
    try:
        _opener.open(url, timeout=10)
    except HTTPError as answer:
        if answer.code not in (302, 303):
            raise AssertionError(f"/authorize answered {answer.code}: {answer.read()!r}") from None
        return answer.headers["Location"]
    raise AssertionError("the sandbox's /authorize did not redirect")


def callback_path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def sign_in(client: Any, sandbox: RunningSandbox, user: str = "listener") -> Any:
    """The whole sign-in over HTTP: /auth/spotify -> sandbox /authorize -> callback."""
    start = client.get("/auth/spotify")
    assert start.status_code == 302
    callback = authorize(sandbox, start["Location"], user, "approve")
    answer = client.get(callback_path(callback))
    assert answer.status_code == 302
    assert answer["Location"] == "/", answer["Location"]
    return answer


@pytest.fixture
def listener(client: Any, spotify_at_sandbox: RunningSandbox, db: Any) -> Any:
    """The test client signed in as the sandbox's `listener`."""
    sign_in(client, spotify_at_sandbox, "listener")
    return client
