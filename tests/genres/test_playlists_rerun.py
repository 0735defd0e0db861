"""The normal case of a playlist request: the listener asks again an hour (or a week) later,
long after the window in which a missing playlist is put down to a lagging listing. Swedify
looks the playlist up in the listener's playlists, finds it, and keeps filling it: no second
playlist, no track twice. Against the sandbox over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone

from genres.models import GenrePlaylist
from genres.playlist_runner import DELETED_AFTER
from genres.spotify import CallRecord
from sandbox.testing import RunningSandbox, running_sandbox
from tests.genres.test_playlists_sandbox import Listener, results

pytestmark = [pytest.mark.django_db, pytest.mark.integration]

CREATE_ROUTE = "POST /me/playlists"
LIST_ROUTE = "GET /me/playlists"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture(autouse=True)
def _spotify_is_the_sandbox(settings, sandbox) -> Iterator[None]:
    settings.SPOTIFY_API_URL = sandbox.api_url
    settings.SPOTIFY_ACCOUNTS_URL = sandbox.accounts_url
    yield
    sandbox.clear_faults()


@pytest.fixture
def listener(sandbox, django_user_model) -> Listener:
    return Listener(sandbox, django_user_model, {"id": "rerunner", "tracks": 300, "artists": 6})


def made_an_hour_ago(genre: str) -> None:
    an_hour_ago = timezone.now() - timedelta(hours=1)
    assert GenrePlaylist.objects.filter(genre=genre).update(updated_at=an_hour_ago) == 1
    # Past the window in which a playlist missing from the listing still counts as there.
    assert GenrePlaylist.objects.get(genre=genre).updated_at < timezone.now() - DELETED_AFTER


def test_running_the_request_an_hour_later_reuses_the_playlist_and_adds_nothing(listener, sandbox):
    genre = listener.top(1)[0]
    name = f"{genre} (from Likes)"
    first = results(listener.run(genres=[genre]))[genre]
    made_an_hour_ago(genre)
    calls: list[CallRecord] = []

    again = results(listener.run(on_call=calls.append, genres=[genre]))[genre]

    assert again["status"] == "skipped"
    assert again["reason"] == "nothing new"
    assert again["playlistId"] == first["playlistId"]
    assert again["tracksAdded"] == 0
    (playlist,) = listener.named(name)
    assert playlist["id"] == first["playlistId"]
    assert listener.items_of(name) == listener.genres[genre]
    endpoints = [call.endpoint for call in calls]
    # The listing was read (the playlist is old enough to have been deleted), nothing created.
    assert LIST_ROUTE in endpoints
    assert CREATE_ROUTE not in endpoints
    assert GenrePlaylist.objects.get(genre=genre).playlist_id == first["playlistId"]


def test_running_the_request_an_hour_later_adds_only_the_new_likes_to_the_same_playlist(
    listener, sandbox
):
    genres = listener.top(3)
    first = results(listener.run(genres=genres))
    old = {genre: list(listener.genres[genre]) for genre in genres}
    for genre in genres:
        made_an_hour_ago(genre)
    sandbox.add_likes(listener.id, 12)
    new = listener.rescan()
    assert any(len(new[genre]) > len(old[genre]) for genre in genres)
    calls: list[CallRecord] = []

    job = listener.run(on_call=calls.append, genres=genres)

    for genre in genres:
        result = results(job)[genre]
        added = len(new[genre]) - len(old[genre])
        assert result["status"] == ("updated" if added else "skipped")
        assert result["playlistId"] == first[genre]["playlistId"]
        assert result["tracksAdded"] == added
        items = listener.items_of(f"{genre} (from Likes)")
        assert sorted(items) == sorted(new[genre])
        assert len(items) == len(set(items))
    assert len(listener.playlists()) == 3
    assert CREATE_ROUTE not in [call.endpoint for call in calls]
