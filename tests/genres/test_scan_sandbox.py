"""Scans against the Spotify sandbox over HTTP: results equal the sandbox's truth, rescans are
incremental, and the shared artist cache saves a second listener's requests."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from genres import ratelimit, scan_runner, tasks
from genres.models import Artist, LibrarySource, LibraryTrack, Scan, ScanResult
from tests.genres.conftest import sign_in

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


@pytest.fixture(autouse=True)
def _fresh_limiter() -> None:
    """A fresh process-wide rate limiter: what an earlier test's 429s taught it (a lower
    budget, a hold) must not slow this test down or make its scan wait for the budget."""
    ratelimit._limiters.clear()


def csrf(client: Any) -> str:
    return client.get("/session").json()["csrfToken"]


def start_scan(client: Any, **body: Any) -> Any:
    return client.post(
        "/api/scans",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=csrf(client),
    )


def scan_to_end(client: Any, **body: Any) -> dict[str, Any]:
    """POST /api/scans, run the task function directly, answer GET /api/scans/<id>."""
    answer = start_scan(client, **body)
    assert answer.status_code == 202, answer.content
    scan_id = answer.json()["id"]
    tasks.scan_run(scan_id)
    return client.get(f"/api/scans/{scan_id}").json()


def assert_matches_truth(payload: dict[str, Any], truth: dict[str, Any]) -> None:
    assert payload["totalTracks"] == truth["totalTracks"]
    assert payload["totalArtists"] == truth["totalArtists"]
    assert payload["totalGenres"] == truth["totalGenres"]
    assert {g["name"]: sorted(g["trackIds"]) for g in payload["genres"]} == truth["genres"]
    assert all(g["count"] == len(g["trackIds"]) for g in payload["genres"])
    assert sorted(payload["unclassified"]["trackIds"]) == truth["unclassified"]
    assert payload["unclassified"]["count"] == len(truth["unclassified"])
    order = [(-g["count"], g["name"]) for g in payload["genres"]]
    assert order == sorted(order)
    assert payload["truncated"] is False


def route_count(stats: dict[str, Any], route: str) -> int:
    return stats["by_route"].get(route, 0)


def most_in_flight(log: list[dict[str, Any]]) -> int:
    """The most requests the sandbox was answering at once (its log stamps each request's end
    and duration)."""
    events: list[tuple[float, int]] = []
    for entry in log:
        end = datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()
        events += [(end - entry["duration_ms"] / 1000, 1), (end, -1)]
    most = current = 0
    for _, change in sorted(events):
        current += change
        most = max(most, current)
    return most


def test_a_scan_of_the_listener_matches_the_sandbox_truth_exactly(
    listener, spotify_at_sandbox, enqueued
):
    scan = scan_to_end(listener)

    assert scan["status"] == "succeeded"
    assert scan["step"] == "done"
    assert scan["error"] is None
    assert scan["finishedAt"] is not None
    payload = listener.get("/api/genres").json()
    assert payload["schemaVersion"] == 1
    assert payload["scanId"] == scan["id"]
    assert_matches_truth(payload, spotify_at_sandbox.truth("listener"))
    assert scan["tracksFound"] == payload["totalTracks"]
    assert scan["tracksTotal"] == 600


def test_a_rescan_after_ten_new_likes_reads_one_page_and_only_the_new_artists(
    listener, spotify_at_sandbox, enqueued
):
    sandbox = spotify_at_sandbox
    first = scan_to_end(listener)
    assert first["status"] == "succeeded"
    known_rows = LibraryTrack.objects.filter(source="liked").count()
    sandbox.add_likes("listener", 10, new_artists=10)
    sandbox.reset_stats()

    second = scan_to_end(listener, refresh=True)

    assert second["status"] == "succeeded"
    stats = sandbox.stats()
    assert route_count(stats, "GET /v1/me/tracks") == 1
    assert route_count(stats, "GET /v1/artists/{id}") == 10
    assert route_count(stats, "GET /v1/artists") == 0
    # Followed and top artists were harvested a moment ago: not again.
    assert route_count(stats, "GET /v1/me/following") == 0
    assert route_count(stats, "GET /v1/me/top/artists") == 0
    assert second["artistsToFetch"] == 10
    assert second["artistsFetched"] == 10
    assert LibraryTrack.objects.filter(source="liked").count() == known_rows + 10
    assert_matches_truth(listener.get("/api/genres").json(), sandbox.truth("listener"))


def test_a_like_removed_since_the_last_scan_triggers_a_full_reread(
    listener, spotify_at_sandbox, enqueued
):
    sandbox = spotify_at_sandbox
    assert scan_to_end(listener)["status"] == "succeeded"
    user_id = LibraryTrack.objects.values_list("user_id", flat=True).first()
    # As if the listener had liked this track at our last scan and unliked it since: the
    # newest-first read cannot see that; only the total does.
    LibraryTrack.objects.create(
        user_id=user_id, source="liked", track_id="0" * 22, artist_ids=["1" * 22], position=599
    )
    LibrarySource.objects.filter(user_id=user_id, source="liked").update(total=601)
    sandbox.reset_stats()

    rescan = scan_to_end(listener, refresh=True)

    assert rescan["status"] == "succeeded"
    # One incremental page, then the whole list (12 pages of 50) again.
    assert route_count(sandbox.stats(), "GET /v1/me/tracks") == 1 + 12
    assert not LibraryTrack.objects.filter(track_id="0" * 22).exists()
    assert LibrarySource.objects.get(user_id=user_id, source="liked").total == 600
    assert_matches_truth(listener.get("/api/genres").json(), sandbox.truth("listener"))


def test_an_unchanged_library_rescans_with_a_single_page_and_no_artist_lookups(
    listener, spotify_at_sandbox, enqueued
):
    sandbox = spotify_at_sandbox
    first = scan_to_end(listener)
    sandbox.reset_stats()

    second = scan_to_end(listener, refresh=True)

    stats = sandbox.stats()
    assert route_count(stats, "GET /v1/me/tracks") == 1
    assert route_count(stats, "GET /v1/artists/{id}") == 0
    assert second["artistsToFetch"] == 0
    first_payload = ScanResult.objects.get(scan_id=first["id"]).payload
    second_payload = listener.get("/api/genres").json()
    assert second_payload["scanId"] == second["id"]
    assert second_payload["genres"] == first_payload["genres"]


def test_a_second_listener_sharing_half_the_artists_does_only_the_other_half_of_lookups(
    client, spotify_at_sandbox, enqueued
):
    sandbox = spotify_at_sandbox
    # No followed or top artists, so every genre comes from a lookup or the shared cache.
    common = {"tracks": 150, "artists": 40, "followed_fraction": 0, "top_fraction": 0}
    sandbox.create_user({"id": "first", "artist_offset": 30_000, **common})
    sandbox.create_user({"id": "second", "artist_offset": 30_020, **common})
    sign_in(client, sandbox, "first")
    assert scan_to_end(client)["status"] == "succeeded"
    first_artists = set(Artist.objects.values_list("spotify_id", flat=True))
    client.post("/auth/logout", HTTP_X_CSRFTOKEN=csrf(client))
    sign_in(client, sandbox, "second")
    sandbox.reset_stats()

    scan = scan_to_end(client)

    assert scan["status"] == "succeeded"
    second_artists: set[str] = set()
    for ids in LibraryTrack.objects.filter(user__username="spotify:second").values_list(
        "artist_ids", flat=True
    ):
        second_artists.update(ids)
    new = second_artists - first_artists
    lookups = route_count(sandbox.stats(), "GET /v1/artists/{id}")
    assert lookups == len(new) == scan["artistsToFetch"]
    assert 0.3 * len(second_artists) < lookups < 0.7 * len(second_artists)
    assert_matches_truth(client.get("/api/genres").json(), sandbox.truth("second"))


def test_liked_songs_and_a_playlist_are_scanned_together_without_duplicates(
    listener, spotify_at_sandbox, enqueued
):
    sandbox = spotify_at_sandbox
    road_trip = next(p for p in sandbox.playlists("listener") if p["name"] == "Road trip")
    sources = ["liked", f"playlist:{road_trip['id']}"]

    scan = scan_to_end(listener, sources=sources)

    assert scan["status"] == "succeeded"
    assert scan["sources"] == sources
    assert_matches_truth(listener.get("/api/genres").json(), sandbox.truth("listener", sources))


def test_a_playlist_the_listener_may_not_read_fails_the_scan_with_the_step(
    listener, spotify_at_sandbox, enqueued
):
    other = next(
        p for p in spotify_at_sandbox.playlists("listener") if p["owner"]["id"] != "listener"
    )

    scan = scan_to_end(listener, sources=[f"playlist:{other['id']}"])

    assert scan["status"] == "failed"
    assert scan["error"]["error"] == "Failed to fetch tracks from Spotify"
    assert scan["error"]["details"].startswith("403")
    assert scan["error"]["step"] == "fetching_tracks"
    assert listener.get("/api/genres").status_code == 404


def test_hostile_genre_names_round_trip_through_the_json_api(listener, enqueued):
    scan_to_end(listener)

    raw = listener.get("/api/genres").content
    names = {genre["name"] for genre in json.loads(raw)["genres"]}

    for hostile in (
        "<script>alert(1)</script>",
        '"><img src=x onerror=alert(1)>',
        "{genre}",
        "a/b\\c",
        "'; DROP TABLE genres;--",
        "progressive " * 24 + "post-rock",
        "日本のロック",
        "ελληνικό ροκ",
    ):
        assert hostile in names
    assert b"<script>" not in raw  # escaped by the JSON encoder, never raw HTML


def test_a_fresh_scan_is_reused_and_a_refresh_starts_a_new_one(
    listener, enqueued, django_capture_on_commit_callbacks
):
    first = scan_to_end(listener)

    again = start_scan(listener, sources=["liked"], refresh=False)
    with django_capture_on_commit_callbacks(execute=True):
        forced = start_scan(listener, refresh=True)

    assert again.status_code == 200
    assert again.json()["reused"] is True
    assert again.json()["id"] == first["id"]
    assert forced.status_code == 202
    assert forced.json()["id"] != first["id"]
    assert enqueued[-1] == forced.json()["id"]
    running_again = start_scan(listener, refresh=True)
    assert running_again.status_code == 200
    assert running_again.json()["id"] == forced.json()["id"]
    assert running_again.json()["reused"] is False
    assert Scan.objects.filter(status=Scan.Status.QUEUED).count() == 1


def test_an_empty_library_scans_to_an_empty_result(client, spotify_at_sandbox, enqueued):
    sign_in(client, spotify_at_sandbox, "newbie")

    scan = scan_to_end(client)
    again = scan_to_end(client, refresh=True)

    assert scan["status"] == again["status"] == "succeeded"
    payload = client.get("/api/genres").json()
    assert payload["scanId"] == again["id"]
    assert (payload["totalTracks"], payload["totalGenres"], payload["genres"]) == (0, 0, [])
    assert payload["unclassified"] == {"count": 0, "trackIds": []}


def test_an_extended_quota_scan_sends_full_batches_and_overlaps_its_requests(
    client, spotify_at_sandbox, enqueued, monkeypatch
):
    from genres.spotify import forget_batch_artists_memory

    sandbox = spotify_at_sandbox
    real_save = scan_runner._ScanRun.save
    progress: list[tuple[str, int, int, int]] = []

    def noting_save(self: Any, **changes: Any) -> None:
        real_save(self, **changes)
        scan = self.scan
        progress.append((scan.step, scan.tracks_found, scan.artists_fetched, scan.artists_to_fetch))

    monkeypatch.setattr(scan_runner._ScanRun, "save", noting_save)
    spec = {"tracks": 1_000, "artists": 300, "followed_fraction": 0, "top_fraction": 0}
    sandbox.create_user({"id": "wide", "artist_offset": 40_000, **spec})
    sandbox.configure(extended_quota=True)
    forget_batch_artists_memory()
    sign_in(client, sandbox, "wide")
    sandbox.reset_stats()
    sandbox.set_faults(latency_ms=50)

    scan = scan_to_end(client)

    assert scan["status"] == "succeeded"
    stats = sandbox.stats()
    truth = sandbox.truth("wide")
    batches = -(-truth["totalArtists"] // 50)
    # Every batch full: 1 profile + 20 pages + ceil(A/50) batches + 4 harvest requests.
    assert route_count(stats, "GET /v1/artists") == batches
    assert route_count(stats, "GET /v1/artists/{id}") == 0
    assert route_count(stats, "GET /v1/me/tracks") == 20
    assert stats["total"] == 1 + 20 + batches + 4
    # Requests overlapped (read from the sandbox's log, not from a wall clock the loaded
    # machine stretches): one at a time, none would be in flight beside another.
    assert most_in_flight(sandbox.requests(limit=2000)) >= 4
    assert_matches_truth(client.get("/api/genres").json(), truth)
    # The lookups ran beside the reads: artists were stored while pages were still read.
    reading = [p for p in progress if p[0] == "fetching_tracks"]
    assert any(fetched > 0 and found < 1_000 for _, found, fetched, _ in reading)
    fetched = [p[2] for p in progress]
    to_fetch = [p[3] for p in progress]
    assert fetched == sorted(fetched)
    assert to_fetch == sorted(to_fetch)
    assert all(f <= t for f, t in zip(fetched, to_fetch, strict=True))
    assert fetched[-1] == to_fetch[-1] == truth["totalArtists"]
