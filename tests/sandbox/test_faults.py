"""Fault injection: rate limit, quotas, scripted errors, drops, latency, stats."""

from __future__ import annotations

import http.client
import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor

import pytest

from sandbox.testing import RunningSandbox, running_sandbox
from tests.sandbox.conftest import Api, sign_in


def test_it_answers_429_with_retry_after_over_the_rate_limit(
    api: Api, sandbox: RunningSandbox
) -> None:
    sandbox.set_faults(rate_limit=3)
    assert [api.get("/me").status for _ in range(3)] == [200, 200, 200]
    limited = api.get("/me")
    assert limited.status == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 30
    assert limited.json()["error"]["status"] == 429
    # The window is shared by every endpoint of the app.
    assert api.get("/me/tracks").status == 429
    stats = sandbox.stats()
    assert stats["rate_limited"] == 2
    assert stats["too_many_requests"] == 2


def test_a_slot_frees_after_retry_after(api: Api, sandbox: RunningSandbox) -> None:
    sandbox.set_faults(rate_limit=2, rate_window=1.0)
    assert api.get("/me").status == 200
    assert api.get("/me").status == 200
    limited = api.get("/me")
    assert limited.status == 429
    assert limited.headers["Retry-After"] == "1"
    time.sleep(1.05)
    assert api.get("/me").status == 200


def test_the_rate_limit_holds_under_concurrent_requests(api: Api, sandbox: RunningSandbox) -> None:
    sandbox.set_faults(rate_limit=10)
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: api.get("/me").status, range(30)))
    assert statuses.count(200) == 10
    assert statuses.count(429) == 20


def test_quota_429_says_quota_exceeded_and_only_for_its_group(
    api: Api, sandbox: RunningSandbox
) -> None:
    sandbox.set_faults(quota={"artists": 2})
    artist_id = api.get("/me/following?type=artist&limit=1").json()["artists"]["items"][0]["id"]
    assert api.get(f"/artists/{artist_id}").status == 200
    assert api.get(f"/artists/{artist_id}").status == 200
    exhausted = api.get(f"/artists/{artist_id}")
    assert exhausted.status == 429
    assert exhausted.json()["error"]["reason"] == "QUOTA_EXCEEDED"
    assert exhausted.headers["Retry-After"] == "36000"
    assert api.get("/me/tracks").status == 200
    sandbox.clear_faults()
    assert api.get(f"/artists/{artist_id}").status == 200


def test_the_quota_flag_applies_to_every_group() -> None:
    with running_sandbox(quota=1, quota_retry_after=7200) as sandbox:
        api = sign_in(sandbox, "listener")
        assert api.get("/me").status == 200
        second = api.get("/me")
        assert (second.status, second.headers["Retry-After"]) == (429, "7200")
        assert api.get("/me/tracks").status == 200


def test_scripted_faults_answer_the_next_matching_requests(
    api: Api, sandbox: RunningSandbox
) -> None:
    sandbox.set_faults(
        scripted=[
            {"status": 503, "count": 2, "path": "/v1/me/tracks"},
            {"status": 429, "count": 1, "path": "/v1/me", "retry_after": 3},
        ]
    )
    assert api.get("/me/playlists").status == 200
    assert api.get("/me/tracks").status == 503
    assert api.get("/me/tracks").status == 503
    assert api.get("/me/tracks").status == 200
    limited = api.get("/me")
    assert (limited.status, limited.headers["Retry-After"]) == (429, "3")
    assert api.get("/me").status == 200
    assert sandbox.control("GET", "faults")["scripted"] == []


def test_a_write_answered_502_is_applied(api: Api, sandbox: RunningSandbox) -> None:
    playlist = api.post("/me/playlists", {"name": "jazz", "public": False}).json()
    sandbox.set_faults(scripted=[{"action": "write_then_status", "count": 1}])
    track = next(i["track"] for i in api.get("/me/tracks").json()["items"] if i["track"])
    answer = api.post(f"/playlists/{playlist['id']}/items", {"uris": [track["uri"]]})
    assert answer.status == 502
    stored = next(p for p in sandbox.playlists("listener") if p["id"] == playlist["id"])
    assert [item["uri"] for item in stored["items"]] == [track["uri"]]
    again = api.post(f"/playlists/{playlist['id']}/items", {"uris": [track["uri"]]})
    assert again.status == 201


def test_a_create_answered_502_still_creates_the_playlist(
    api: Api, sandbox: RunningSandbox
) -> None:
    sandbox.set_faults(scripted=[{"action": "write_then_status", "count": 1}])
    assert api.post("/me/playlists", {"name": "ghost", "public": False}).status == 502
    assert "ghost" in [p["name"] for p in sandbox.playlists("listener")]


def test_a_dropped_connection_gets_no_answer(api: Api, sandbox: RunningSandbox) -> None:
    sandbox.set_faults(scripted=[{"action": "drop", "count": 1, "path": "/v1/me"}])
    with pytest.raises((http.client.RemoteDisconnected, urllib.error.URLError, ConnectionError)):
        api.get("/me")
    assert api.get("/me").status == 200
    assert sandbox.stats()["by_status"]["dropped"] == 1


def test_the_error_rate_is_seeded_and_partial() -> None:
    runs = []
    for _ in range(2):
        with running_sandbox(error_rate=0.3, seed="errors") as sandbox:
            api = sign_in(sandbox, "listener")
            runs.append([api.get("/me").status for _ in range(40)])
    assert runs[0] == runs[1]
    errors = [s for s in runs[0] if s != 200]
    assert 3 <= len(errors) <= 25
    assert set(errors) <= {500, 502, 503}


def test_latency_lets_concurrent_requests_overlap(api: Api, sandbox: RunningSandbox) -> None:
    sandbox.set_faults(latency_ms=300)
    started = time.monotonic()
    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda _: api.get("/me").status, range(6)))
    elapsed = time.monotonic() - started
    assert statuses == [200] * 6
    # Overlapping: one latency (0.3 s); one at a time would take 1.8 s.
    assert 0.3 <= elapsed < 1.2


def test_stats_count_by_group_route_and_status(api: Api, sandbox: RunningSandbox) -> None:
    sandbox.reset_stats()
    api.get("/me")
    api.get("/me/tracks?limit=51")
    api.get("/artists/0000000000000000000000")
    api.get("/me/albums")
    stats = sandbox.stats()
    assert stats["total"] == 4
    assert stats["by_group"] == {"profile": 1, "library": 1, "artists": 1, "other": 1}
    assert stats["by_route"]["GET /v1/artists/{id}"] == 1
    assert stats["by_status"] == {"200": 1, "400": 1, "404": 2}
    log = sandbox.requests(limit=2)
    assert [entry["path"] for entry in log] == [
        "/v1/artists/0000000000000000000000",
        "/v1/me/albums",
    ]
    assert log[0]["user"] == "listener"
    assert log[0]["status"] == 404
    assert log[0]["duration_ms"] >= 0
    assert sandbox.reset_stats()["total"] == 0
