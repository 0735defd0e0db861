"""The retry policy of the Spotify adapter, driven by the sandbox's faults over real HTTP."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from genres.pools import AHEAD_FACTOR
from genres.ratelimit import LocalRateLimiter, RateLimiterTimeout
from genres.spotify import (
    MAX_SHORT_429S,
    CallRecord,
    SpotifyAccounts,
    SpotifyAmbiguousWrite,
    SpotifyClient,
    SpotifyRateLimited,
    SpotifyUnavailable,
    TokenSet,
)
from sandbox.testing import RunningSandbox


class StaticTokens:
    def __init__(self, access_token: str) -> None:
        self.token = access_token

    def access_token(self) -> str:
        return self.token

    def force_refresh(self) -> str:
        raise AssertionError("no 401 expected in these tests")


class RecordingLimiter:
    """Admits everything, counting acquisitions and penalties."""

    def __init__(self) -> None:
        self.acquired = 0
        self.penalties: list[float] = []
        self._lock = threading.Lock()

    def acquire(self, timeout: float = 120.0) -> None:
        with self._lock:
            self.acquired += 1

    def penalize(self, retry_after: float) -> None:
        with self._lock:
            self.penalties.append(retry_after)


class Harness:
    """A client on the sandbox with a recording limiter, recorded sleeps and call records."""

    def __init__(self, sandbox: RunningSandbox, user: str = "listener", **kwargs: Any) -> None:
        self.sandbox = sandbox
        self.limiter = kwargs.pop("limiter", RecordingLimiter())
        self.sleeps: list[float] = []
        self.records: list[CallRecord] = []
        sleep = kwargs.pop("sleep", self.sleeps.append)
        token = sandbox.issue_token(user)["access_token"]
        self.client = SpotifyClient(
            tokens=StaticTokens(token),
            limiter=self.limiter,
            on_call=self.records.append,
            backoff_base=0.01,
            sleep=sleep,
            **kwargs,
        )

    @property
    def statuses(self) -> list[int]:
        return [record.status for record in self.records]


@pytest.fixture
def sandbox(adapter_sandbox: RunningSandbox) -> RunningSandbox:
    return adapter_sandbox


def artist_ids(harness: Harness, pages: int = 1) -> list[str]:
    ids: dict[str, None] = {}
    for n in range(pages):
        for item in harness.client.liked_page(offset=n * 50).items:
            for artist in (item["track"] or {}).get("artists", []):
                if artist.get("id"):
                    ids[artist["id"]] = None
    harness.records.clear()
    harness.sandbox.reset_stats()
    return list(ids)


def track_uris(harness: Harness, count: int) -> list[str]:
    items = harness.client.liked_page(offset=0).items
    uris = [item["track"]["uri"] for item in items if item["track"] and item["track"]["id"]]
    harness.records.clear()
    return uris[:count]


# --- 429 ------------------------------------------------------------------------------------

pytestmark = pytest.mark.integration


def test_a_short_429_tells_the_limiter_waits_and_goes_on(sandbox) -> None:
    sandbox.set_faults(scripted=[{"status": 429, "count": 2, "retry_after": 2, "path": "/v1/me"}])
    harness = Harness(sandbox)
    assert harness.client.me()["id"] == "listener"
    assert harness.statuses == [429, 429, 200]
    assert [r.retry_after for r in harness.records] == [2.0, 2.0, None]
    assert harness.limiter.penalties == [2.0, 2.0]
    assert harness.sleeps == [2.0, 2.0]
    assert harness.limiter.acquired == 3


def test_it_really_sits_out_a_short_rolling_window_429(sandbox) -> None:
    sandbox.set_faults(rate_limit=3, rate_window=1.0)
    harness = Harness(sandbox, limiter=LocalRateLimiter(0), sleep=time.sleep)
    start = time.monotonic()
    for _ in range(5):
        harness.client.me()
    elapsed = time.monotonic() - start
    assert 429 in harness.statuses
    assert harness.statuses.count(200) == 5
    assert 0.9 <= elapsed < 4.0


def test_a_limiter_matching_the_budget_provokes_no_429_and_loses_little_time(sandbox) -> None:
    # The margin must exceed the delay between our stamp and the sandbox's on a loaded
    # machine (20 ms did not, once): windows of 2 s with a 0.3 s margin.
    sandbox.set_faults(rate_limit=10, rate_window=2.0)
    limiter = LocalRateLimiter(10, 2.0, margin=0.3)
    harness = Harness(sandbox, limiter=limiter, sleep=time.sleep)
    start = time.monotonic()
    for _ in range(30):
        harness.client.me()
    elapsed = time.monotonic() - start
    assert harness.statuses == [200] * 30
    # The budget allows 30 requests in 3 windows of 2 s (about 4.6 s with the margins); a
    # limiter that lost a window per burst (the wrong behaviour) would need 8.6 s or more.
    assert elapsed <= 7.0


def test_a_jobs_client_hands_a_429_longer_than_its_limiter_wait_back_instead_of_sleeping(
    sandbox,
) -> None:
    sandbox.set_faults(scripted=[{"status": 429, "count": 2, "retry_after": 20, "path": "/v1/me"}])
    job = Harness(sandbox, limiter_timeout=8.0)
    with pytest.raises(SpotifyRateLimited) as caught:
        job.client.me()
    assert (caught.value.retry_after, job.sleeps) == (20.0, [])
    # The same 429 is waited out in place by a client that may wait up to the default.
    patient = Harness(sandbox)
    assert patient.client.me()["id"]
    assert patient.sleeps == [20.0]


def test_it_gives_up_after_five_short_429s_for_one_request(sandbox) -> None:
    sandbox.set_faults(scripted=[{"status": 429, "count": 9, "retry_after": 1, "path": "/v1/me"}])
    harness = Harness(sandbox)
    with pytest.raises(SpotifyRateLimited) as caught:
        harness.client.me()
    assert caught.value.quota is False
    assert caught.value.retry_after == 1.0
    assert harness.statuses == [429] * MAX_SHORT_429S
    assert len(harness.sleeps) == MAX_SHORT_429S - 1


def test_a_quota_429_raises_at_once_without_sleeping(sandbox) -> None:
    sandbox.set_faults(quota={"profile": 1})
    harness = Harness(sandbox, sleep=time.sleep)
    harness.client.me()
    start = time.monotonic()
    with pytest.raises(SpotifyRateLimited) as caught:
        harness.client.me()
    assert time.monotonic() - start < 5.0  # sleeping out the quota would take ten hours
    error = caught.value
    assert error.quota is True
    assert error.retry_after == 36000
    assert error.reason == "QUOTA_EXCEEDED"
    assert error.status == 429
    assert error.endpoint == "GET /me"
    assert str(error) == "429: Quota exceeded"
    assert harness.limiter.penalties == []
    assert harness.statuses == [200, 429]


def test_a_retry_after_longer_than_a_minute_raises_at_once(sandbox) -> None:
    sandbox.set_faults(scripted=[{"status": 429, "retry_after": 120, "path": "/v1/me/tracks"}])
    harness = Harness(sandbox)
    with pytest.raises(SpotifyRateLimited) as caught:
        harness.client.liked_page(offset=0)
    assert caught.value.quota is False
    assert caught.value.retry_after == 120.0
    assert harness.sleeps == []


def test_a_limiter_without_a_slot_for_minutes_pauses_like_a_long_429(sandbox) -> None:
    class FullLimiter(RecordingLimiter):
        def acquire(self, timeout: float = 120.0) -> None:
            raise RateLimiterTimeout("no slot")

    harness = Harness(sandbox, limiter=FullLimiter())
    with pytest.raises(SpotifyRateLimited) as caught:
        harness.client.me()
    assert caught.value.reason == "LIMITER_TIMEOUT"
    assert caught.value.retry_after == 60.0
    assert sandbox.stats()["total"] == 0


# --- 5xx and network errors -----------------------------------------------------------------


def test_two_server_errors_then_success_is_a_success(sandbox) -> None:
    sandbox.set_faults(scripted=[{"status": 503, "count": 2, "path": "/v1/me"}])
    harness = Harness(sandbox)
    assert harness.client.me()["id"] == "listener"
    assert harness.statuses == [503, 503, 200]
    # Full jitter: up to base * 1, then up to base * 2.
    assert len(harness.sleeps) == 2
    assert 0 <= harness.sleeps[0] <= 0.01
    assert 0 <= harness.sleeps[1] <= 0.02


def test_three_server_errors_make_spotify_unavailable(sandbox) -> None:
    sandbox.set_faults(scripted=[{"status": 502, "count": 3, "path": "/v1/me/tracks"}])
    harness = Harness(sandbox)
    with pytest.raises(SpotifyUnavailable) as caught:
        harness.client.liked_page(offset=0)
    assert caught.value.attempts == 3
    assert caught.value.status == 502
    assert str(caught.value).startswith("502: ")
    assert sandbox.stats()["by_status"] == {"502": 3}


def test_a_dropped_connection_on_a_read_is_retried(sandbox) -> None:
    sandbox.set_faults(scripted=[{"action": "drop", "count": 1, "path": "/v1/me"}])
    harness = Harness(sandbox)
    assert harness.client.me()["id"] == "listener"
    assert harness.statuses == [0, 200]


def test_reads_that_keep_failing_on_the_network_are_unavailable(sandbox, settings) -> None:
    with socket_without_server() as url:
        settings.SPOTIFY_API_URL = url
        harness = Harness(sandbox)
        with pytest.raises(SpotifyUnavailable, match="network error") as caught:
            harness.client.me()
    assert caught.value.attempts == 3
    assert caught.value.status is None
    assert harness.statuses == [0, 0, 0]


class socket_without_server:
    """A URL whose port accepts no connections (bound and closed at once)."""

    def __enter__(self) -> str:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    def __exit__(self, *exc: object) -> None:
        return None


# --- Writes ---------------------------------------------------------------------------------


def test_a_write_answered_502_after_it_was_applied_is_ambiguous_and_never_resent(
    sandbox,
) -> None:
    harness = Harness(sandbox)
    playlist = harness.client.create_playlist(name="indie rock (from Likes)")
    uris = track_uris(harness, 10)
    sandbox.set_faults(scripted=[{"action": "write_then_status", "status": 502, "count": 1}])
    with pytest.raises(SpotifyAmbiguousWrite) as caught:
        harness.client.add_items(playlist["id"], uris)
    assert caught.value.status == 502
    assert caught.value.endpoint == "POST /playlists/{id}/items"
    assert harness.statuses == [502]
    stored = {p["id"]: p for p in sandbox.playlists("listener")}[playlist["id"]]
    assert stored["total"] == 10  # applied exactly once
    assert sandbox.stats()["by_route"]["POST /v1/playlists/{id}/items"] == 1
    # What the caller does next: reconcile, then add only what is missing (nothing).
    assert harness.client.playlist_track_ids(playlist["id"]) == [u.rsplit(":")[-1] for u in uris]


def test_a_playlist_creation_answered_503_is_ambiguous_and_created_once(sandbox) -> None:
    harness = Harness(sandbox)
    sandbox.set_faults(
        scripted=[{"action": "write_then_status", "status": 503, "path": "/v1/me/playlists"}]
    )
    with pytest.raises(SpotifyAmbiguousWrite):
        harness.client.create_playlist(name="jazz (from Likes)")
    names = [p["name"] for p in harness.client.my_playlists()]
    assert names.count("jazz (from Likes)") == 1
    assert sandbox.stats()["by_route"]["POST /v1/me/playlists"] == 1


def test_a_dropped_connection_on_a_write_is_ambiguous_and_not_resent(sandbox) -> None:
    harness = Harness(sandbox)
    sandbox.set_faults(scripted=[{"action": "drop", "method": "POST", "path": "/v1/me/playlists"}])
    with pytest.raises(SpotifyAmbiguousWrite):
        harness.client.create_playlist(name="blues (from Likes)")
    assert harness.statuses == [0]
    assert harness.sleeps == []


def test_a_write_that_times_out_is_ambiguous_and_applied_once(sandbox, monkeypatch) -> None:
    from genres import spotify

    monkeypatch.setattr(spotify, "READ_TIMEOUT", 0.2)
    harness = Harness(sandbox)
    sandbox.set_faults(latency_ms=500)
    with pytest.raises(SpotifyAmbiguousWrite, match="ReadTimeout"):
        harness.client.create_playlist(name="techno (from Likes)")
    assert harness.statuses == [0]
    sandbox.clear_faults()
    # The sandbox finishes the request the client gave up on: the write is applied, once.
    deadline = time.monotonic() + 3.0
    names: list[str] = []
    while "techno (from Likes)" not in names and time.monotonic() < deadline:
        time.sleep(0.05)
        names = [p["name"] for p in sandbox.playlists("listener")]
    assert names.count("techno (from Likes)") == 1


# --- Errors in artist lookups ---------------------------------------------------------------


def test_a_quota_error_in_a_worker_stops_new_lookups_and_keeps_what_arrived(sandbox) -> None:
    harness = Harness(sandbox, concurrency=2)
    ids = artist_ids(harness, pages=2)
    assert len(ids) > 30
    sandbox.set_faults(quota={"artists": 5})
    delivered: list[str] = []
    with pytest.raises(SpotifyRateLimited) as caught:
        harness.client.artists(ids, on_artist=lambda artist: delivered.append(artist["id"]))
    assert caught.value.quota is True
    # The 403 batch attempt used one unit of quota, four single lookups the rest.
    assert len(delivered) == 4
    assert set(delivered) <= set(ids)
    artist_requests = sandbox.stats()["by_group"]["artists"]
    assert artist_requests <= 1 + 4 + 2  # plus at most the lookups already in flight


def test_server_errors_in_a_worker_stop_the_lookups(sandbox) -> None:
    harness = Harness(sandbox, concurrency=1)
    ids = artist_ids(harness)
    sandbox.set_faults(scripted=[{"status": 500, "count": 3, "path": "/v1/artists/*"}])
    delivered: list[dict] = []
    with pytest.raises(SpotifyUnavailable):
        harness.client.artists(ids, on_artist=delivered.append)
    assert delivered == []
    assert sandbox.stats()["by_route"] == {"GET /v1/artists": 1, "GET /v1/artists/{id}": 3}


def test_an_error_in_on_artist_stops_the_lookups_and_is_raised(sandbox) -> None:
    harness = Harness(sandbox, concurrency=2)
    ids = artist_ids(harness)
    seen: list[str] = []
    lock = threading.Lock()

    def on_artist(artist: dict) -> None:
        with lock:
            seen.append(artist["id"])
            if len(seen) == 3:
                raise RuntimeError("database is down")

    with pytest.raises(RuntimeError, match="database is down"):
        harness.client.artists(ids, on_artist=on_artist)
    assert len(seen) == 3  # never called again after it failed
    # No lookup starts after the failure: before it, two were handled and at most
    # AHEAD_FACTOR x concurrency were started but not yet handled.
    assert sandbox.stats()["by_route"]["GET /v1/artists/{id}"] <= 2 + AHEAD_FACTOR * 2


# --- Without the sandbox: answers Spotify would rarely give -----------------------------------


class CannedSession(requests.Session):
    """Answers each request with the next canned (status, JSON body, headers)."""

    def __init__(self, answers: list[tuple[int, bytes, dict[str, str]]]) -> None:
        super().__init__()
        self.answers = answers
        self.urls: list[str] = []

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.urls.append(url)
        status, body, headers = self.answers.pop(0)
        response = requests.Response()
        response.status_code = status
        response._content = body
        response.headers.update(headers)
        response.url = url
        return response


def canned_client(session: CannedSession, records: list[CallRecord]) -> SpotifyClient:
    return SpotifyClient(
        tokens=StaticTokens("token"),
        limiter=RecordingLimiter(),
        on_call=records.append,
        backoff_base=0.0,
        session=session,
    )


def test_a_next_url_outside_the_configured_api_is_never_used(settings) -> None:
    settings.SPOTIFY_API_URL = "http://api.test/v1"
    body = (
        b'{"items": [{"added_at": "2026-01-01T00:00:00Z", "item": {"id": "t1"}}], '
        b'"total": 3, "offset": 0, "limit": 1, "next": "https://evil.test/v1/me/tracks?offset=1"}'
    )
    session = CannedSession([(200, body, {})])
    records: list[CallRecord] = []
    page = canned_client(session, records).liked_page(offset=0, limit=1)
    assert page.next == "http://api.test/v1/me/tracks?offset=1&limit=1"
    assert page.next_offset == 1
    assert page.items[0]["track"] == {"id": "t1"}
    assert session.urls == ["http://api.test/v1/me/tracks"]


def test_a_2xx_that_is_not_json_is_retried_as_a_server_error(settings) -> None:
    settings.SPOTIFY_API_URL = "http://api.test/v1"
    session = CannedSession([(200, b"<html>proxy</html>", {}), (200, b'{"id": "me"}', {})])
    records: list[CallRecord] = []
    assert canned_client(session, records).me() == {"id": "me"}
    assert [r.status for r in records] == [200, 200]


def test_a_429_without_retry_after_waits_one_second(settings) -> None:
    settings.SPOTIFY_API_URL = "http://api.test/v1"
    session = CannedSession([(429, b"", {}), (200, b'{"id": "me"}', {})])
    sleeps: list[float] = []
    client = SpotifyClient(
        tokens=StaticTokens("token"),
        limiter=RecordingLimiter(),
        session=session,
        sleep=sleeps.append,
    )
    assert client.me() == {"id": "me"}
    assert sleeps == [1.0]


def test_accounts_exchange_is_never_retried(settings) -> None:
    settings.SPOTIFY_ACCOUNTS_URL = "http://accounts.test"
    session = CannedSession([(503, b"", {})])
    with pytest.raises(SpotifyUnavailable):
        SpotifyAccounts(session=session).exchange_code(code="c", code_verifier="v" * 64)
    assert len(session.urls) == 1


def test_a_refresh_without_a_new_refresh_token_keeps_the_old_one(settings) -> None:
    settings.SPOTIFY_ACCOUNTS_URL = "http://accounts.test"
    body = b'{"access_token": "new", "token_type": "Bearer", "expires_in": 3600, "scope": "a b"}'
    tokens = SpotifyAccounts(session=CannedSession([(200, body, {})])).refresh(
        refresh_token="old-refresh"
    )
    assert tokens == TokenSet(
        access_token="new",
        refresh_token="old-refresh",
        expires_at=tokens.expires_at,
        scope="a b",
    )
    assert tokens.expires_at - datetime.now(UTC) > timedelta(minutes=59)
