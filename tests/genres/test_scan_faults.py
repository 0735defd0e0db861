"""Scans when things go wrong: Spotify's 429s, quotas, 5xx bursts and outages, a worker
killed mid-scan, Redis gone. Against the sandbox over HTTP; tasks are called directly."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from genres import ratelimit, scan_runner, tasks
from genres.jobs import RUN_NOT_CLAIMED
from genres.models import Artist, LibraryTrack, Scan, ScanResult, SpotifyCallBucket
from genres.spotify import SpotifyClient, SpotifyError
from tests.genres.conftest import sign_in
from tests.genres.test_scan_sandbox import (
    assert_matches_truth,
    route_count,
    scan_to_end,
    start_scan,
)

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


@pytest.fixture(autouse=True)
def _fresh_limiter() -> None:
    """A fresh process-wide rate limiter: what an earlier test's 429s taught it (a lower
    budget, a hold) must not slow this test down or make its scan wait for the budget."""
    ratelimit._limiters.clear()


@pytest.fixture
def small(client: Any, spotify_at_sandbox: Any, db: Any) -> Any:
    """The test client signed in as `small` (120 tracks, 60 artists)."""
    sign_in(client, spotify_at_sandbox, "small")
    return client


def artist_lookups_ok(sandbox: Any) -> int:
    return sum(
        1
        for entry in sandbox.requests(limit=2000)
        if entry["route"] == "/v1/artists/{id}" and entry["status"] == 200
    )


def _calls_by_endpoint() -> dict[str, int]:
    calls: dict[str, int] = {}
    for bucket in SpotifyCallBucket.objects.all():
        calls[bucket.endpoint] = calls.get(bucket.endpoint, 0) + bucket.calls
    return calls


def test_short_429s_are_waited_out_and_the_scan_continues(small, spotify_at_sandbox, enqueued):
    sandbox = spotify_at_sandbox
    sandbox.set_faults(
        scripted=[{"status": 429, "retry_after": 1, "count": 2, "path": "/v1/artists/*"}]
    )
    calls_before = _calls_by_endpoint()  # the sign-in's

    scan = scan_to_end(small)

    assert scan["status"] == "succeeded"
    assert sandbox.stats()["too_many_requests"] == 2
    assert_matches_truth(small.get("/api/genres").json(), sandbox.truth("small"))
    buckets = SpotifyCallBucket.objects.filter(endpoint="GET /artists/{id}")
    assert sum(b.rate_limited for b in buckets) == 2
    after = _calls_by_endpoint()
    added = {e: n - calls_before.get(e, 0) for e, n in after.items() if n != calls_before.get(e)}
    # Once (of many runs, before per-endpoint counts were kept) the buckets held 2 calls more
    # than requests_made. Not reproduced since: 25 runs on SQLite beside other engineers'
    # suites, 6 on PostgreSQL after test_ratelimit.py (December 2026). Ruled out by reading
    # the code: one scan's recorder counts a call and adds it to its bucket under one lock,
    # a flush takes the pending buckets under that lock and writes each once (only this
    # thread flushes), and requests_made is that counter when the scan finishes, after its
    # last call. The sign-in's recorder flushes before `calls_before` is read. So the two
    # extra calls were written by someone else while this test ran: possible on PostgreSQL
    # only (other connections' commits are visible mid-test; on SQLite this test holds the
    # write lock from its first statement), e.g. a thread left over from an earlier test that
    # still finished a recorded job. If it recurs, the message names the endpoints and the
    # sandbox's own count, which tells a foreign writer (sandbox agrees with requests_made)
    # from a miscount in the scan (it does not).
    assert (
        sum(added.values())
        == Scan.objects.get(pk=scan["id"]).requests_made
        == sandbox.stats()["total"] - 1
    ), (added, sandbox.stats()["by_route"])


def test_an_exhausted_quota_pauses_the_scan_and_recovery_resumes_it_from_the_checkpoint(
    small, spotify_at_sandbox, enqueued
):
    sandbox = spotify_at_sandbox
    sandbox.set_faults(quota={"artists": 12}, quota_retry_after=36000)

    paused = scan_to_end(small)

    assert paused["status"] == "paused"
    assert paused["step"] == "fetching_artists"
    resume_at = Scan.objects.get(pk=paused["id"]).resume_at
    assert resume_at > timezone.now() + timedelta(hours=9)
    assert paused["resumeAt"] is not None
    error = paused["error"]
    assert error["error"] == "Failed to fetch artist data from Spotify"
    assert error["details"] == "429: Too Many Requests (quota exceeded)"
    assert error["step"] == "fetching_artists"
    assert error["tracksFound"] == paused["tracksFound"] > 0
    assert error["artistsToFetch"] == paused["artistsToFetch"] > 12
    assert 0 < paused["artistsFetched"] <= 12
    # Not due yet: recovery leaves it alone, and so does a stray delivery of the task.
    tasks.jobs_recover()
    assert enqueued == []
    assert tasks.scan_run(paused["id"]) == RUN_NOT_CLAIMED

    sandbox.clear_faults()
    Scan.objects.filter(pk=paused["id"]).update(resume_at=timezone.now() - timedelta(seconds=1))
    tasks.jobs_recover()
    assert enqueued == [paused["id"]]
    tasks.scan_run(enqueued[0])

    done = small.get(f"/api/scans/{paused['id']}").json()
    assert done["status"] == "succeeded"
    assert done["error"] is None
    assert done["resumeAt"] is None
    # Every artist was looked up successfully exactly once across both runs.
    assert artist_lookups_ok(sandbox) == done["artistsToFetch"] == done["artistsFetched"]
    assert_matches_truth(small.get("/api/genres").json(), sandbox.truth("small"))


def test_bursts_of_5xx_are_retried_and_the_scan_succeeds(small, spotify_at_sandbox, enqueued):
    sandbox = spotify_at_sandbox
    sandbox.set_faults(
        scripted=[
            {"status": 503, "count": 2, "path": "/v1/me/tracks"},
            {"status": 502, "count": 2, "path": "/v1/artists/*"},
            {"status": 500, "count": 1, "path": "/v1/me"},
        ]
    )

    scan = scan_to_end(small)

    assert scan["status"] == "succeeded"
    assert sandbox.stats()["by_status"].get("503") == 2
    assert_matches_truth(small.get("/api/genres").json(), sandbox.truth("small"))


def test_an_outage_fails_the_scan_with_step_info_and_keeps_the_previous_result(
    small, spotify_at_sandbox, enqueued
):
    sandbox = spotify_at_sandbox
    first = scan_to_end(small)
    sandbox.add_likes("small", 5, new_artists=5)
    sandbox.set_faults(scripted=[{"status": 503, "count": 1000, "path": "/v1/artists/*"}])

    failed = scan_to_end(small, refresh=True)

    assert failed["status"] == "failed"
    assert failed["finishedAt"] is not None
    error = failed["error"]
    assert error["error"] == "Failed to fetch artist data from Spotify"
    assert error["details"].startswith("503: ")
    assert error["step"] == "fetching_artists"
    assert error["tracksFound"] == failed["tracksFound"] > 0
    assert error["artistsToFetch"] == 5
    genres = small.get("/api/genres").json()
    assert genres["scanId"] == first["id"]
    assert ScanResult.objects.count() == 1


def test_an_outage_while_reading_tracks_names_that_step(small, spotify_at_sandbox, enqueued):
    spotify_at_sandbox.set_faults(scripted=[{"status": 502, "count": 100, "path": "/v1/me/tracks"}])

    failed = scan_to_end(small)

    assert failed["status"] == "failed"
    assert failed["error"]["error"] == "Failed to fetch tracks from Spotify"
    assert failed["error"]["step"] == "fetching_tracks"
    assert small.get("/api/genres").json() == {"error": "No scan yet"}


# Pages from this offset on wait until a lookup has failed (2,000 tracks: 40 pages).
HELD_FROM_OFFSET = 400
GATE_TIMEOUT = 60.0


def test_an_artist_outage_while_pages_are_still_read_names_the_artists_step(
    client, spotify_at_sandbox, enqueued, monkeypatch
):
    # Lookups start with the first pages; one that fails ends the scan before the read does.
    # Which comes first, the last page or the failed lookup, was a race the read won on a
    # loaded machine: here the pages past the first writes wait until a lookup has failed.
    sandbox = spotify_at_sandbox
    spec = {"tracks": 2_000, "artists": 300, "followed_fraction": 0, "top_fraction": 0}
    sandbox.create_user({"id": "long", "artist_offset": 45_000, **spec})
    sign_in(client, sandbox, "long")
    sandbox.set_faults(scripted=[{"status": 503, "count": 10_000, "path": "/v1/artists/*"}])
    lookup_failed = threading.Event()
    gate_timed_out: list[int] = []
    real_artist, real_liked_page = SpotifyClient.artist, SpotifyClient.liked_page

    def failing_artist(self: SpotifyClient, artist_id: str) -> Any:
        try:
            return real_artist(self, artist_id)
        except SpotifyError:
            lookup_failed.set()
            raise

    def gated_liked_page(self: SpotifyClient, *, offset: int, **kwargs: Any) -> Any:
        if offset >= HELD_FROM_OFFSET and not lookup_failed.wait(GATE_TIMEOUT):
            gate_timed_out.append(offset)
        return real_liked_page(self, offset=offset, **kwargs)

    monkeypatch.setattr(SpotifyClient, "artist", failing_artist)
    monkeypatch.setattr(SpotifyClient, "liked_page", gated_liked_page)

    failed = scan_to_end(client)

    assert gate_timed_out == []  # no lookup failed at all: the gate let the read go on
    assert failed["status"] == "failed"
    error = failed["error"]
    assert error["error"] == "Failed to fetch artist data from Spotify"
    assert error["step"] == "fetching_artists"
    assert error["details"].startswith("503: ")
    assert 0 < error["tracksFound"] < 2_000  # the read had not finished
    assert error["artistsToFetch"] > 0
    liked = Scan.objects.get(pk=failed["id"]).checkpoint["sources"]["liked"]
    assert liked["done"] is False
    assert 0 < liked["offset"] < 2_000
    assert LibraryTrack.objects.filter(source="liked").count() == liked["found"]


def _make_stale(scan_id: str) -> None:
    Scan.objects.filter(pk=scan_id).update(heartbeat_at=timezone.now() - timedelta(minutes=3))


def test_a_worker_killed_while_fetching_artists_is_taken_over_and_finishes_correctly(
    listener, spotify_at_sandbox, enqueued, monkeypatch
):
    sandbox = spotify_at_sandbox
    monkeypatch.setattr(scan_runner, "ARTIST_CHUNK", 20)
    real_store = scan_runner.artists_store
    chunks_stored: list[int] = []

    def dying_store(artists: Any, **kwargs: Any) -> Any:
        if isinstance(artists, dict):  # a lookup answer (harvests are lists)
            chunks_stored.append(len(artists))
            if len(chunks_stored) == 3:
                raise SystemExit("worker killed")
        return real_store(artists, **kwargs)

    monkeypatch.setattr(scan_runner, "artists_store", dying_store)
    scan_id = start_scan(listener).json()["id"]

    with pytest.raises(SystemExit):
        tasks.scan_run(scan_id)

    scan = Scan.objects.get(pk=scan_id)
    assert scan.status == Scan.Status.RUNNING
    # Progress counts exactly the stores that happened before the worker died: at most a
    # chunk each (a page write also stores what has arrived by then).
    assert all(0 < size <= 20 for size in chunks_stored)
    assert scan.artists_fetched == sum(chunks_stored[:2])
    # The dead worker's heartbeat is fresh: nobody may take the scan yet.
    assert tasks.scan_run(scan_id) == RUN_NOT_CLAIMED
    tasks.jobs_recover()
    assert enqueued == []

    monkeypatch.setattr(scan_runner, "artists_store", real_store)
    _make_stale(scan_id)
    tasks.jobs_recover()
    assert enqueued == [scan_id]
    assert tasks.scan_run(scan_id) == "succeeded"

    scan.refresh_from_db()
    assert scan.attempts == 2
    assert scan.artists_fetched == scan.artists_to_fetch
    rows = LibraryTrack.objects.filter(source="liked")
    assert rows.count() == rows.values("track_id").distinct().count() == scan.tracks_found
    assert_matches_truth(listener.get("/api/genres").json(), sandbox.truth("listener"))


def test_a_worker_killed_while_reading_tracks_resumes_at_the_checkpointed_page(
    listener, spotify_at_sandbox, enqueued, monkeypatch
):
    sandbox = spotify_at_sandbox
    real_save = scan_runner._ScanRun.save
    killed: list[bool] = []
    offsets: list[int] = []

    # Each run of pages that has arrived is written at once, so the first page is always a
    # write of its own and the second write moves the read further, however fast the rest
    # arrives (with 4 pages a write, an idle machine could deliver the rest as one run).
    monkeypatch.setattr(scan_runner, "PAGES_PER_WRITE", 1)

    def dying_save(self: Any, **changes: Any) -> None:
        # Die at the second write that moves the read.
        offset = self.checkpoint["sources"].get("liked", {}).get("offset", 0)
        if offset and offset not in offsets:
            offsets.append(offset)
        if len(offsets) == 2 and not killed:
            killed.append(True)
            raise SystemExit("worker killed")
        real_save(self, **changes)

    monkeypatch.setattr(scan_runner._ScanRun, "save", dying_save)
    scan_id = start_scan(listener).json()["id"]
    with pytest.raises(SystemExit):
        tasks.scan_run(scan_id)
    liked = Scan.objects.get(pk=scan_id).checkpoint["sources"]["liked"]
    checkpointed, total = liked["offset"], liked["total"]
    assert checkpointed == offsets[0]
    assert 0 < checkpointed < offsets[1] <= total
    assert checkpointed % 50 == 0
    assert LibraryTrack.objects.filter(source="liked").count() == liked["found"] > 0
    sandbox.reset_stats()

    _make_stale(scan_id)
    assert tasks.scan_run(scan_id) == "succeeded"

    # Only the pages from the checkpoint on: the ones written before the crash are not re-read.
    pages_left = -(-(total - checkpointed) // 50)
    assert route_count(sandbox.stats(), "GET /v1/me/tracks") == pages_left
    assert route_count(sandbox.stats(), "GET /v1/me") == 0
    rows = LibraryTrack.objects.filter(source="liked")
    assert rows.count() == rows.values("track_id").distinct().count()
    assert_matches_truth(listener.get("/api/genres").json(), sandbox.truth("listener"))


def test_a_scan_succeeds_with_redis_down(settings, small, spotify_at_sandbox, enqueued):
    dead = "redis://127.0.0.1:9/0"  # the discard port: nothing listens there
    settings.REDIS_URL = dead
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": dead,
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 0.25,
                "SOCKET_TIMEOUT": 0.25,
                "IGNORE_EXCEPTIONS": True,
            },
        }
    }

    scan = scan_to_end(small)

    assert scan["status"] == "succeeded"
    assert Artist.objects.count() >= scan["artistsToFetch"] > 0
    assert_matches_truth(small.get("/api/genres").json(), spotify_at_sandbox.truth("small"))


def test_a_quota_hit_while_pages_are_read_in_parallel_pauses_and_resumes_to_the_truth(
    listener, spotify_at_sandbox, enqueued
):
    sandbox = spotify_at_sandbox
    # The first page, then 8 at once of which only 4 are admitted (in any order).
    sandbox.set_faults(quota={"library": 5}, quota_retry_after=36000)

    paused = scan_to_end(listener)

    assert paused["status"] == "paused"
    assert paused["step"] == "fetching_tracks"
    assert paused["error"]["details"] == "429: Too Many Requests (quota exceeded)"
    liked = Scan.objects.get(pk=paused["id"]).checkpoint["sources"]["liked"]
    # The checkpoint is the in-order prefix of admitted pages, whatever order they came in.
    assert liked["offset"] in range(50, 251, 50)
    rows = LibraryTrack.objects.filter(source="liked")
    assert rows.count() == liked["found"] == paused["tracksFound"]
    assert max(rows.values_list("position", flat=True)) < liked["offset"]

    sandbox.clear_faults()
    sandbox.reset_stats()
    Scan.objects.filter(pk=paused["id"]).update(resume_at=timezone.now() - timedelta(seconds=1))
    assert tasks.scan_run(paused["id"]) == "succeeded"

    assert route_count(sandbox.stats(), "GET /v1/me/tracks") == (600 - liked["offset"]) // 50
    assert rows.count() == rows.values("track_id").distinct().count()
    done = listener.get(f"/api/scans/{paused['id']}").json()
    assert done["status"] == "succeeded"
    assert done["tracksTotal"] == 600
    assert_matches_truth(listener.get("/api/genres").json(), sandbox.truth("listener"))
