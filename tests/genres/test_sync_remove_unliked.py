"""Auto-sync's removeUnliked against the Spotify sandbox over real HTTP: a track the listener
unliked leaves the genre playlists Swedify put it in, a track the listener added to such a
playlist by hand stays even once unliked (only the run's baseline, what Swedify put there, is
ever removed), and with removeUnliked off nothing is removed at all.

The set-up (a small listener signed in, scanned, with playlists for their top genres) and the
step-by-step driver are test_sync_sandbox's."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from genres.models import GenrePlaylist, SyncSchedule
from genres.sync import sync_update
from sandbox.testing import RunningSandbox
from tests.genres.test_sync_sandbox import (
    USER,
    Listener,
    genre_likes,
    genres_of,
    spotify_playlists,
    sync_once,
)

pytestmark = [pytest.mark.django_db, pytest.mark.integration]

DELETE_ROUTE = "DELETE /v1/playlists/{id}/items"


@pytest.fixture
def small(client: Any, spotify_at_sandbox: RunningSandbox) -> Listener:
    return Listener(client, spotify_at_sandbox)


def add_by_hand(sandbox: RunningSandbox, playlist_id: str, track: dict[str, Any]) -> None:
    """The listener adds a track to a playlist in the Spotify app (their own token)."""
    token = sandbox.issue_token(USER)["access_token"]
    answer = requests.post(
        f"{sandbox.api_url}/playlists/{playlist_id}/items",
        json={"uris": [track["uri"]]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text


def unlike(sandbox: RunningSandbox, *tracks: dict[str, Any]) -> None:
    answer = sandbox.control(
        "DELETE", f"/users/{USER}/likes", {"track_ids": [t["id"] for t in tracks]}
    )
    assert sorted(answer["removed"]) == sorted(t["id"] for t in tracks)


class Scene:
    """After one synced run: ``swedify_put`` is a new like that the run put into the genre
    playlists (``its_playlists``, by name); ``by_hand`` is a like of none of those genres that
    the listener then added to the first of them in the app."""

    def __init__(self, small: Listener) -> None:
        sandbox, genres = small.sandbox, set(small.genres)
        added = genre_likes(sandbox, small.genres, 1)
        while not any(not genres_of(t) & genres for t in added):
            added += sandbox.add_likes(USER, 5)["added"]
        self.swedify_put = next(t for t in added if genres_of(t) & genres)
        self.by_hand = next(t for t in added if not genres_of(t) & genres)
        first = sync_once(small.user)
        assert first.last_result["status"] == "succeeded", first.last_result
        names = small.names()
        self.its_playlists = [names[g] for g in sorted(genres_of(self.swedify_put) & genres)]
        on_spotify = spotify_playlists(sandbox)
        assert all(self.swedify_put["id"] in on_spotify[name] for name in self.its_playlists)
        row = GenrePlaylist.objects.get(user=small.user, name=self.its_playlists[0])
        add_by_hand(sandbox, row.playlist_id, self.by_hand)
        self.hand_playlist = row.name


def test_with_remove_unliked_an_unliked_track_swedify_put_in_leaves_its_playlists(small):
    sync_update(user=small.user, enabled=True, remove_unliked=True)
    scene = Scene(small)
    before = spotify_playlists(small.sandbox)
    unlike(small.sandbox, scene.swedify_put, scene.by_hand)
    small.sandbox.reset_stats()

    schedule = sync_once(small.user)

    result = schedule.last_result
    assert result["status"] == "succeeded", result
    assert result["tracksRemoved"] == len(scene.its_playlists)
    assert sorted(p["tracksRemoved"] for p in result["playlists"]) == [1] * len(scene.its_playlists)
    assert small.sandbox.stats()["by_route"][DELETE_ROUTE] == len(scene.its_playlists)
    after = spotify_playlists(small.sandbox)
    for name, tracks in before.items():
        expected = [t for t in tracks if t != scene.swedify_put["id"]]
        assert after[name] == expected, name
    # The listener's own addition stays although they no longer like it either.
    assert scene.by_hand["id"] in after[scene.hand_playlist]
    # Swedify's playlists still hold exactly the genres' liked tracks (plus the hand-added one).
    truth = small.sandbox.truth(USER)["genres"]
    for genre, name in small.names().items():
        assert sorted(set(after[name]) - {scene.by_hand["id"]}) == truth[genre], genre


def test_a_run_after_the_removal_removes_nothing_more_and_makes_no_playlist_call(small):
    sync_update(user=small.user, enabled=True, remove_unliked=True)
    scene = Scene(small)
    unlike(small.sandbox, scene.swedify_put, scene.by_hand)
    removal = sync_once(small.user)
    assert removal.last_result["tracksRemoved"] == len(scene.its_playlists)
    small.sandbox.reset_stats()

    schedule = sync_once(small.user)

    assert schedule.last_result["status"] == "succeeded"
    assert schedule.last_result["tracksRemoved"] == 0
    stats = small.sandbox.stats()
    assert stats["by_group"].get("playlists", 0) == 0, stats
    assert DELETE_ROUTE not in stats["by_route"]
    assert scene.by_hand["id"] in spotify_playlists(small.sandbox)[scene.hand_playlist]


def test_with_remove_unliked_off_nothing_is_removed(small):
    sync_update(user=small.user, enabled=True, remove_unliked=False)
    scene = Scene(small)
    before = spotify_playlists(small.sandbox)
    unlike(small.sandbox, scene.swedify_put, scene.by_hand)
    small.sandbox.reset_stats()

    schedule = sync_once(small.user)

    assert schedule.last_result["status"] == "succeeded"
    assert schedule.last_result["tracksRemoved"] == 0
    assert DELETE_ROUTE not in small.sandbox.stats()["by_route"]
    assert spotify_playlists(small.sandbox) == before
    assert SyncSchedule.objects.get(user=small.user).remove_unliked is False


def lost_answers(sandbox: RunningSandbox, count: int) -> None:
    """The next ``count`` removals are applied but answered 502 (the answer is lost)."""
    fault = {"action": "write_then_status", "status": 502, "count": count}
    sandbox.set_faults(scripted=[fault | {"method": "DELETE", "path": "/v1/playlists/*/items"}])


def test_a_removal_whose_answer_was_lost_is_sent_once_more_and_the_run_succeeds(small):
    sync_update(user=small.user, enabled=True, remove_unliked=True)
    scene = Scene(small)
    unlike(small.sandbox, scene.swedify_put)
    lost_answers(small.sandbox, 1)
    small.sandbox.reset_stats()

    schedule = sync_once(small.user)

    assert schedule.last_result["status"] == "succeeded", schedule.last_result
    assert schedule.last_result["tracksRemoved"] == len(scene.its_playlists)
    assert small.sandbox.stats()["by_route"][DELETE_ROUTE] == len(scene.its_playlists) + 1
    on_spotify = spotify_playlists(small.sandbox)
    assert all(scene.swedify_put["id"] not in on_spotify[name] for name in scene.its_playlists)


def test_a_removal_unclear_twice_fails_the_run_and_the_next_run_removes_the_track(small):
    sync_update(user=small.user, enabled=True, remove_unliked=True)
    scene = Scene(small)
    unlike(small.sandbox, scene.swedify_put)
    lost_answers(small.sandbox, 2)

    failed = sync_once(small.user)
    again = sync_once(small.user)

    assert failed.last_result["status"] == "failed"
    assert "could not remove" in failed.last_result["error"]
    # The track stayed in the baseline, so the next run takes it out (again, harmlessly).
    assert again.last_result["status"] == "succeeded", again.last_result
    assert again.last_result["tracksRemoved"] >= 1
    on_spotify = spotify_playlists(small.sandbox)
    assert all(scene.swedify_put["id"] not in on_spotify[name] for name in scene.its_playlists)
