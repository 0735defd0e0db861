"""Auto-sync runs against the Spotify sandbox over real HTTP: likes that arrive over time land
in the genre playlists Swedify already made (never a duplicate, never a new playlist), a run
that finds nothing new costs at most 3 requests and no playlist call, and Spotify refusing the
sign-in or a disconnect stops auto-sync and the home page says so.

Each run is driven step by step in this process: the run's scan and playlist job are run by
their own runner functions where a worker would run them."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
from django.test import TestCase

from genres.models import GenrePlaylist, JobOrigin, PlaylistJob, Scan, SyncSchedule
from genres.playlist_runner import playlist_job_run
from genres.playlists import playlist_job_start
from genres.scan_runner import scan_run
from genres.scans import scan_start
from genres.sync import sync_start, sync_update
from genres.sync_runner import SYNC_DONE, SYNC_IDLE, sync_advance
from sandbox.testing import RunningSandbox
from tests.genres.conftest import sign_in

pytestmark = [pytest.mark.django_db, pytest.mark.integration]

USER = "small"
PLAYLIST_GENRES = 3


def drive(user_id: int, steps: int = 10) -> str:
    """Advance the listener's run to its end, running its scan and job where a worker would."""
    for _ in range(steps):
        outcome = sync_advance(user_id=user_id)
        if outcome in (SYNC_DONE, SYNC_IDLE):
            return outcome
        schedule = SyncSchedule.objects.get(user_id=user_id)
        if schedule.playlist_job_id:
            playlist_job_run(job_id=schedule.playlist_job_id)
        elif schedule.scan_id:
            scan_run(scan_id=schedule.scan_id)
    raise AssertionError("the run did not end")


def sync_once(user: Any, origin: str = JobOrigin.SYNC) -> SyncSchedule:
    _, started = sync_start(user=user, origin=origin)
    assert started
    assert drive(user.pk) == SYNC_DONE
    return SyncSchedule.objects.get(user=user)


def spotify_playlists(sandbox: RunningSandbox) -> dict[str, list[str]]:
    """The user's playlists on "Spotify": name -> track ids in order."""
    return {p["name"]: [i["id"] for i in p["items"]] for p in sandbox.playlists(USER)}


class Listener:
    """The sandbox's small user signed in, scanned, with playlists for their top genres."""

    def __init__(self, client: Any, sandbox: RunningSandbox) -> None:
        from django.contrib.auth import get_user_model

        self.sandbox = sandbox
        sign_in(client, sandbox, USER)
        self.client = client
        self.user = get_user_model().objects.get(spotify_account__spotify_id=USER)
        scan, _ = scan_start(user=self.user, sources=["liked"], refresh=True)
        assert scan_run(scan_id=scan.pk) == Scan.Status.SUCCEEDED
        truth = sandbox.truth(USER)["genres"]
        self.genres = sorted(truth, key=lambda g: (-len(truth[g]), g))[:PLAYLIST_GENRES]
        job = playlist_job_start(user=self.user, genres=self.genres)
        playlist_job_run(job_id=job.pk)
        job.refresh_from_db()
        assert job.status == PlaylistJob.Status.SUCCEEDED, job.results

    def names(self) -> dict[str, str]:
        return dict(GenrePlaylist.objects.filter(user=self.user).values_list("genre", "name"))

    def assert_playlists_match_truth(self) -> None:
        """Every genre playlist holds exactly the genre's liked tracks, each once, and the
        listener has no other Swedify playlist."""
        truth = self.sandbox.truth(USER)["genres"]
        on_spotify = spotify_playlists(self.sandbox)
        assert len(on_spotify) == len(self.genres)
        for genre, name in self.names().items():
            tracks = on_spotify[name]
            assert max(Counter(tracks).values()) == 1, f"a duplicate in {name}"
            assert sorted(tracks) == truth[genre], genre


@pytest.fixture
def small(client: Any, spotify_at_sandbox: RunningSandbox) -> Listener:
    return Listener(client, spotify_at_sandbox)


def genres_of(track: dict[str, Any]) -> set[str]:
    """Swedify's rule: a track is in every genre of every one of its artists."""
    return {genre for artist in track["artists"] for genre in artist["genres"]}


def genre_likes(sandbox: RunningSandbox, genres: list[str], count: int) -> list[dict[str, Any]]:
    """Add likes until at least ``count`` of them fall into ``genres``; all that were added."""
    added: list[dict[str, Any]] = []
    while sum(1 for t in added if genres_of(t) & set(genres)) < count:
        added += sandbox.add_likes(USER, 5)["added"]
    return added


def test_new_likes_go_into_the_existing_genre_playlists_once_each(small):
    sync_update(user=small.user, enabled=True)
    added = genre_likes(small.sandbox, small.genres, 3)
    expected = sum(len(genres_of(t) & set(small.genres)) for t in added)
    touched = {g for t in added for g in genres_of(t)} & set(small.genres)

    schedule = sync_once(small.user)

    result = schedule.last_result
    assert result["status"] == "succeeded", result
    assert result["tracksAdded"] == expected
    assert result["playlistsUpdated"] == len(touched)
    small.assert_playlists_match_truth()
    # The run's job added to the playlists the genres had: none was made.
    assert GenrePlaylist.objects.filter(user=small.user).count() == PLAYLIST_GENRES
    job = PlaylistJob.objects.filter(user=small.user, origin=JobOrigin.SYNC).get()
    assert {r["status"] for r in job.results} <= {"updated", "skipped"}


def test_a_run_after_likes_arrived_over_time_adds_them_and_a_second_run_adds_nothing(small):
    sync_update(user=small.user, enabled=True)
    sandbox = small.sandbox
    sandbox.control("POST", f"/users/{USER}/likes/schedule", {"count": 6, "every_seconds": 0.05})
    deadline = time.monotonic() + 30
    while sandbox.control("GET", f"/users/{USER}/likes/schedule")["pending"]:
        assert time.monotonic() < deadline, "the scheduled likes did not arrive"
        time.sleep(0.05)

    first = sync_once(small.user)
    second = sync_once(small.user)

    small.assert_playlists_match_truth()
    assert first.last_result["status"] == "succeeded"
    assert second.last_result["tracksAdded"] == 0
    assert second.last_result["playlistsUpdated"] == 0


def test_a_run_that_finds_nothing_new_costs_at_most_3_requests_and_no_playlist_call(small):
    sync_update(user=small.user, enabled=True)
    sync_once(small.user)  # the first run learns what the playlists hold
    small.sandbox.reset_stats()

    schedule = sync_once(small.user)

    stats = small.sandbox.stats()
    assert stats["total"] + stats.get("accounts", 0) <= 3, stats
    assert stats["by_group"].get("playlists", 0) == 0, stats
    assert schedule.last_result["status"] == "succeeded"
    assert schedule.last_result["tracksAdded"] == 0


def test_the_first_run_after_playlists_were_made_already_knows_what_they_hold(small):
    """Its baseline comes from the job that made the playlists: nothing new, no playlist call."""
    sync_update(user=small.user, enabled=True)
    small.sandbox.reset_stats()

    sync_once(small.user)

    assert small.sandbox.stats()["by_group"].get("playlists", 0) == 0


def test_without_remove_unliked_a_track_no_longer_liked_stays_in_its_playlist(small):
    sync_update(user=small.user, enabled=True, remove_unliked=False)
    added = genre_likes(small.sandbox, small.genres, 1)
    sync_once(small.user)
    gone = next(t for t in added if genres_of(t) & set(small.genres))
    small.sandbox.control("DELETE", f"/users/{USER}/likes", {"track_ids": [gone["id"]]})

    schedule = sync_once(small.user)

    assert schedule.last_result["tracksRemoved"] == 0
    on_spotify = spotify_playlists(small.sandbox)
    names = small.names()
    genre = next(g for g in genres_of(gone) if g in small.genres)
    assert gone["id"] in on_spotify[names[genre]]


def test_an_invalid_grant_stops_auto_sync_and_the_home_page_says_so(small):
    sync_update(user=small.user, enabled=True)
    small.sandbox.revoke_refresh_tokens(USER)
    small.sandbox.expire_tokens(USER)

    schedule = sync_once(small.user)

    assert schedule.last_result["status"] == "failed"
    assert not schedule.enabled
    assert schedule.stopped_reason == SyncSchedule.Stopped.REAUTH
    assert schedule.next_run_at is None
    page = small.client.get("/").content.decode()
    assert "Auto-sync stopped" in page
    assert "sign in again" in page


def test_disconnecting_stops_auto_sync(small):
    sync_update(user=small.user, enabled=True)
    client = small.client
    token = client.get("/session").json()["csrfToken"]

    with TestCase.captureOnCommitCallbacks(execute=False):
        client.post("/auth/disconnect", HTTP_X_CSRFTOKEN=token)

    assert not SyncSchedule.objects.filter(enabled=True).exists()
