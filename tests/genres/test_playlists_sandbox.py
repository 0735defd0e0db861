"""Playlist jobs against the Spotify sandbox over real HTTP, with its fault injection.

What is on "Spotify" is read back through the sandbox's control API, so every assertion about
playlists and items is about what a listener would really see.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from genres import ratelimit
from genres.jobs import RUN_FINISHED
from genres.models import GenrePlaylist, PlaylistJob, SpotifyAccount
from genres.playlist_runner import playlist_job_run
from genres.playlists import playlist_job_json, playlist_job_start
from genres.ratelimit import LocalRateLimiter
from genres.spotify import CallRecord, InvalidGrant, SpotifyClient
from sandbox.genres import HOSTILE, NON_ASCII
from sandbox.testing import RunningSandbox, running_sandbox
from tests.genres.test_playlists_runner import WorkerKilled, make_stale

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


@pytest.fixture(autouse=True)
def _fresh_limiter() -> None:
    """A fresh process-wide rate limiter: what an earlier test's 429s taught it (a lower
    budget, a hold) must not slow this test down or make its scan wait for the budget."""
    ratelimit._limiters.clear()


ITEMS_ROUTE = "POST /playlists/{id}/items"
CREATE_ROUTE = "POST /me/playlists"


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


class StaticTokens:
    def __init__(self, token: str) -> None:
        self.token = token

    def access_token(self) -> str:
        return self.token

    def force_refresh(self) -> str:
        raise InvalidGrant("no refresh in these tests")


class Listener:
    """A fresh sandbox user linked to a Django user, with a scan result built from the
    sandbox's truth (what a correct scan reports)."""

    def __init__(self, sandbox: RunningSandbox, django_user_model: Any, spec: dict[str, Any]):
        self.sandbox = sandbox
        self.id = spec["id"]
        if spec.get("create", True):
            sandbox.create_user({k: v for k, v in spec.items() if k != "create"})
        self.token = sandbox.issue_token(self.id)["access_token"]
        self.user = django_user_model.objects.create_user(username=f"django-{self.id}")
        SpotifyAccount.objects.create(user=self.user, spotify_id=self.id, display_name=self.id)
        self.rescan()

    def rescan(self) -> dict[str, list[str]]:
        from tests.genres.test_playlists_runner import make_result

        truth = self.sandbox.truth(self.id)
        self.genres: dict[str, list[str]] = truth["genres"]
        make_result(self.user, self.genres, truth["unclassified"])
        return self.genres

    def top(self, count: int) -> list[str]:
        return sorted(self.genres, key=lambda name: (-len(self.genres[name]), name))[:count]

    def client(self, on_call: Callable[[CallRecord], None] | None = None) -> SpotifyClient:
        return SpotifyClient(
            tokens=StaticTokens(self.token),
            limiter=LocalRateLimiter(0),
            on_call=on_call,
            backoff_base=0,
        )

    def run(self, on_call: Callable[[CallRecord], None] | None = None, **request: Any):
        job = playlist_job_start(user=self.user, **request)
        assert playlist_job_run(job_id=job.pk, client_factory=lambda _u: self.client(on_call)) == (
            RUN_FINISHED
        )
        job.refresh_from_db()
        return job

    def playlists(self) -> list[dict[str, Any]]:
        return self.sandbox.playlists(self.id)

    def named(self, name: str) -> list[dict[str, Any]]:
        return [p for p in self.playlists() if p["name"] == name]

    def items_of(self, name: str) -> list[str]:
        (playlist,) = self.named(name)
        return [item["id"] for item in playlist["items"]]


@pytest.fixture
def listener(sandbox, django_user_model) -> Listener:
    # 300 likes over 6 artists: genres of 30 to 180 tracks, so adds take several batches.
    # The same spec always gives the same library; re-creating the user drops its playlists.
    spec = {"id": "playlister", "tracks": 300, "artists": 6}
    return Listener(sandbox, django_user_model, spec)


def results(job: PlaylistJob) -> dict[str, dict[str, Any]]:
    return {entry["genre"]: entry for entry in playlist_job_json(job)["results"]}


def no_duplicates(items: list[str]) -> bool:
    return all(count == 1 for count in Counter(items).values())


def test_three_genres_become_three_private_playlists_holding_exactly_their_tracks(listener):
    genres = listener.top(3)
    assert len(listener.genres[genres[0]]) > 100  # at least one genre needs two batches

    job = listener.run(genres=genres)

    assert job.status == PlaylistJob.Status.SUCCEEDED
    assert len(listener.playlists()) == 3
    for genre in genres:
        name = f"{genre} (from Likes)"
        (playlist,) = listener.named(name)
        assert playlist["public"] is False
        assert listener.items_of(name) == listener.genres[genre]
        result = results(job)[genre]
        assert result["status"] == "created"
        assert result["playlistId"] == playlist["id"]
        assert result["url"] == playlist["url"]
        assert result["tracksAdded"] == result["tracksTotal"] == len(listener.genres[genre])


def test_running_the_request_again_creates_nothing_and_adds_nothing(listener, sandbox):
    genres = listener.top(3)
    listener.run(genres=genres)
    before = listener.playlists()

    again = listener.run(genres=genres)

    assert again.status == PlaylistJob.Status.SUCCEEDED
    assert {r["status"] for r in results(again).values()} == {"skipped"}
    assert {r["reason"] for r in results(again).values()} == {"nothing new"}
    assert listener.playlists() == before


def test_new_likes_after_a_rescan_add_only_the_missing_tracks(listener, sandbox):
    genres = listener.top(3)
    listener.run(genres=genres)
    old = {genre: list(listener.genres[genre]) for genre in genres}
    sandbox.add_likes(listener.id, 12)
    new = listener.rescan()
    grew = [genre for genre in genres if len(new[genre]) > len(old[genre])]
    assert grew

    job = listener.run(genres=genres)

    for genre in genres:
        result = results(job)[genre]
        added = len(new[genre]) - len(old[genre])
        assert result["status"] == ("updated" if added else "skipped")
        assert result["tracksAdded"] == added
        items = listener.items_of(f"{genre} (from Likes)")
        assert sorted(items) == sorted(new[genre])
        assert no_duplicates(items)
    assert len(listener.playlists()) == 3


def test_a_same_name_playlist_is_skipped_or_kept_beside_ours_as_asked(listener, sandbox):
    first, second = listener.top(2)
    theirs = sandbox.add_playlist(listener.id, name=f"{first} (from Likes)", tracks=4)

    skipped = listener.run(genres=[first], skip_duplicates=True)

    assert results(skipped)[first]["status"] == "skipped"
    assert "already exists" in results(skipped)[first]["reason"]
    assert results(skipped)[first]["playlistId"] == theirs["id"]
    assert len(listener.named(f"{first} (from Likes)")) == 1

    beside = listener.run(genres=[first, second], skip_duplicates=False)

    assert results(beside)[first]["status"] == "created"
    same_name = listener.named(f"{first} (from Likes)")
    assert len(same_name) == 2
    ours = next(p for p in same_name if p["id"] != theirs["id"])
    assert [item["id"] for item in ours["items"]] == listener.genres[first]
    assert next(p for p in same_name if p["id"] == theirs["id"])["total"] == 4


def test_a_create_applied_but_answered_502_leaves_exactly_one_playlist(listener, sandbox):
    genre = listener.top(1)[0]
    sandbox.reset_stats()
    sandbox.set_faults(
        scripted=[{"action": "write_then_status", "method": "POST", "path": "/v1/me/playlists"}]
    )

    job = listener.run(genres=[genre])

    assert results(job)[genre]["status"] == "created"
    assert len(listener.playlists()) == 1
    assert listener.items_of(f"{genre} (from Likes)") == listener.genres[genre]
    assert sandbox.stats()["by_route"].get("POST /v1/me/playlists") == 1


def test_a_create_applied_but_answered_502_beside_a_same_name_one_adopts_ours(listener, sandbox):
    genre = listener.top(1)[0]
    theirs = sandbox.add_playlist(listener.id, name=f"{genre} (from Likes)", tracks=2)
    sandbox.set_faults(
        scripted=[{"action": "write_then_status", "method": "POST", "path": "/v1/me/playlists"}]
    )

    job = listener.run(genres=[genre], skip_duplicates=False)

    same_name = listener.named(f"{genre} (from Likes)")
    assert len(same_name) == 2
    ours = next(p for p in same_name if p["id"] != theirs["id"])
    assert results(job)[genre]["playlistId"] == ours["id"]
    assert [item["id"] for item in ours["items"]] == listener.genres[genre]
    assert next(p for p in same_name if p["id"] == theirs["id"])["total"] == 2


def test_an_add_applied_but_answered_502_never_duplicates_a_track(listener, sandbox):
    genre = listener.top(1)[0]
    sandbox.set_faults(
        scripted=[
            {"action": "write_then_status", "method": "POST", "path": "/v1/playlists/*/items"}
        ]
    )

    job = listener.run(genres=[genre])

    items = listener.items_of(f"{genre} (from Likes)")
    assert items == listener.genres[genre]
    assert results(job)[genre]["tracksAdded"] == len(items)
    assert results(job)[genre]["status"] == "created"


def test_an_outage_on_one_genre_gives_a_partial_job_with_real_counts(listener, sandbox):
    genres = listener.top(3)
    outage_started: list[bool] = []

    def outage_after_the_first_batch(record: CallRecord) -> None:
        if record.endpoint == ITEMS_ROUTE and record.status == 201 and not outage_started:
            outage_started.append(True)
            # Every add (and every retry of the reconciliation's adds) now fails.
            sandbox.set_faults(
                scripted=[
                    {
                        "action": "status",
                        "status": 503,
                        "method": "POST",
                        "path": "/v1/playlists/*/items",
                        "count": 4,
                    }
                ]
            )

    job = listener.run(on_call=outage_after_the_first_batch, genres=genres)

    assert job.status == PlaylistJob.Status.PARTIAL
    failed = results(job)[genres[0]]
    assert failed["status"] == "failed"
    assert "503" in failed["error"]
    assert failed["tracksAdded"] == 100
    assert failed["tracksTotal"] == len(listener.genres[genres[0]])
    assert listener.items_of(f"{genres[0]} (from Likes)") == listener.genres[genres[0]][:100]
    for genre in genres[1:]:
        assert results(job)[genre]["status"] == "created"
        assert listener.items_of(f"{genre} (from Likes)") == listener.genres[genre]

    retried = listener.run(genres=genres)

    assert retried.status == PlaylistJob.Status.SUCCEEDED
    assert results(retried)[genres[0]]["tracksAdded"] == len(listener.genres[genres[0]]) - 100
    assert listener.items_of(f"{genres[0]} (from Likes)") == listener.genres[genres[0]]


def kill_after(route: str, successes: int) -> Callable[[CallRecord], None]:
    """An on_call hook that kills the 'worker' right after the n-th successful write: the
    write is applied on Spotify, its answer never processed."""
    seen: list[CallRecord] = []

    def hook(record: CallRecord) -> None:
        if record.endpoint == route and 200 <= record.status < 300:
            seen.append(record)
            if len(seen) == successes:
                raise WorkerKilled()

    return hook


@pytest.mark.parametrize(("route", "successes"), [(ITEMS_ROUTE, 2), (CREATE_ROUTE, 2)])
def test_a_worker_killed_mid_job_is_resumed_without_duplicates(listener, route, successes):
    genres = listener.top(3)
    job = playlist_job_start(user=listener.user, genres=genres)
    with pytest.raises(WorkerKilled):
        playlist_job_run(
            job_id=job.pk,
            client_factory=lambda _u: listener.client(kill_after(route, successes)),
        )
    job.refresh_from_db()
    assert job.status == PlaylistJob.Status.RUNNING
    make_stale(job)

    assert playlist_job_run(job_id=job.pk, client_factory=lambda _u: listener.client()) == (
        RUN_FINISHED
    )

    job.refresh_from_db()
    assert job.status == PlaylistJob.Status.SUCCEEDED
    assert len(listener.playlists()) == 3
    for genre in genres:
        assert listener.items_of(f"{genre} (from Likes)") == listener.genres[genre]
        assert results(job)[genre]["status"] == "created"
        assert results(job)[genre]["tracksAdded"] == len(listener.genres[genre])
    assert not GenrePlaylist.objects.filter(
        user=listener.user, pending_since__isnull=False
    ).exists()


def test_hostile_and_non_ascii_genre_names_make_correctly_named_playlists(
    sandbox, django_user_model
):
    # The built-in listener's artists carry every special genre of the sandbox vocabulary.
    listener = Listener(sandbox, django_user_model, {"id": "listener", "create": False})
    special = [name for name in (*HOSTILE, *NON_ASCII) if name in listener.genres]
    assert len(special) >= 8
    before = {p["id"] for p in listener.playlists()}

    job = listener.run(genres=special)

    assert job.status == PlaylistJob.Status.SUCCEEDED
    made = {p["name"]: p for p in listener.playlists() if p["id"] not in before}
    assert len(made) == len(special)
    for genre in special:
        expected = f"{genre} (from Likes)"
        if len(expected) > 100:
            expected = genre[:86].rstrip() + "\u2026 (from Likes)"
        assert len(expected) <= 100
        assert [item["id"] for item in made[expected]["items"]] == listener.genres[genre]


def test_the_celery_task_runs_a_job_with_the_listeners_stored_tokens(listener):
    from datetime import timedelta

    from django.utils import timezone

    from genres.crypto import encrypt_token
    from genres.tasks import playlist_job_run_task

    SpotifyAccount.objects.filter(user=listener.user).update(
        access_token_encrypted=encrypt_token(listener.token),
        token_expires_at=timezone.now() + timedelta(hours=1),
    )
    genre = listener.top(3)[-1]
    job = playlist_job_start(user=listener.user, genres=[genre])

    assert playlist_job_run_task(str(job.pk)) == RUN_FINISHED

    job.refresh_from_db()
    assert job.status == PlaylistJob.Status.SUCCEEDED
    assert listener.items_of(f"{genre} (from Likes)") == listener.genres[genre]
    assert playlist_job_run_task(str(job.pk)) == "not_claimed"


def _age(genre: str, minutes: int) -> None:
    """Makes Swedify's playlist for the genre look made ``minutes`` ago."""
    when = timezone.now() - timedelta(minutes=minutes)
    assert GenrePlaylist.objects.filter(genre=genre).update(updated_at=when) == 1


def test_a_playlist_the_listener_deleted_is_made_again_not_filled_unseen(listener, sandbox):
    genre = listener.top(1)[0]
    name = f"{genre} (from Likes)"
    first = results(listener.run(genres=[genre]))[genre]
    _age(genre, 60)
    sandbox.delete_playlist(listener.id, first["playlistId"])
    assert listener.named(name) == []

    again = listener.run(genres=[genre])

    result = results(again)[genre]
    assert result["status"] == "created"
    assert result["playlistId"] != first["playlistId"]
    (playlist,) = listener.named(name)
    assert playlist["id"] == result["playlistId"]
    assert listener.items_of(name) == listener.genres[genre]
    assert result["tracksAdded"] == result["tracksTotal"] == len(listener.genres[genre])
    assert GenrePlaylist.objects.get(genre=genre).playlist_id == playlist["id"]
    # Once made again, it is filled as before.
    assert results(listener.run(genres=[genre]))[genre]["status"] == "skipped"
    assert len(listener.named(name)) == 1


def test_a_deleted_playlist_with_a_same_name_one_of_the_listener_is_skipped(listener, sandbox):
    genre = listener.top(1)[0]
    first = results(listener.run(genres=[genre]))[genre]
    _age(genre, 60)
    sandbox.delete_playlist(listener.id, first["playlistId"])
    theirs = sandbox.add_playlist(listener.id, name=f"{genre} (from Likes)", tracks=3)

    result = results(listener.run(genres=[genre], skip_duplicates=True))[genre]

    assert result["status"] == "skipped"
    assert result["playlistId"] == theirs["id"]
    assert [p["id"] for p in listener.playlists()] == [theirs["id"]]


def test_a_playlist_made_minutes_ago_is_filled_even_when_the_listing_lacks_it(listener, sandbox):
    # Listings may lag behind a create: a young playlist is never taken for deleted.
    genre = listener.top(1)[0]
    first = results(listener.run(genres=[genre]))[genre]
    sandbox.delete_playlist(listener.id, first["playlistId"])

    result = results(listener.run(genres=[genre]))[genre]

    assert result["playlistId"] == first["playlistId"]
    assert result["status"] == "skipped"
    assert listener.playlists() == []  # nothing new was made
