"""Playlist jobs in slices (unit level, the in-memory Spotify double): a job yields its worker
between genres when other work waits, a wait for the shared budget yields instead of failing
the genre, and the job resumed slice by slice ends exactly as one run would."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from genres import jobs, playlists, spotify
from genres.jobs import RUN_FINISHED, RUN_NOT_CLAIMED, RUN_YIELDED
from genres.models import PlaylistJob, Scan
from genres.playlist_runner import playlist_job_run
from genres.playlists import playlist_job_start
from tests.genres.test_playlists_runner import (
    LIBRARY,
    FakeSpotify,
    by_genre,
    make_listener,
    make_result,
)

pytestmark = pytest.mark.django_db(transaction=True)

GENRES = ["swedish pop", "indie rock", "jazz"]


@pytest.fixture
def sent(monkeypatch: Any) -> list[dict[str, Any]]:
    """The messages yields queue (nothing reaches a broker)."""
    messages: list[dict[str, Any]] = []
    monkeypatch.setattr(playlists, "job_enqueue", lambda **message: messages.append(message))
    return messages


@pytest.fixture
def every_genre_a_slice(settings: Any, monkeypatch: Any) -> None:
    """Slices end at once while another listener's scan waits for a worker."""
    settings.SWEDIFY_JOB_SLICE_SECONDS = 0
    monkeypatch.setattr(jobs, "MIN_SLICE_SECONDS", 0.0)
    monkeypatch.setattr(jobs, "WAITING_CHECK_EVERY", 0.0)
    other = get_user_model().objects.create_user("spotify:someone-else")
    Scan.objects.create(user=other, sources=["liked"])


def test_a_job_yields_between_genres_and_ends_as_one_run_would(sent, every_genre_a_slice):
    user = make_listener()
    make_result(user, LIBRARY)
    fake = FakeSpotify()
    job = playlist_job_start(user=user, genres=GENRES)

    outcomes, token = [], ""
    for _ in range(10):
        outcomes.append(
            playlist_job_run(job_id=job.pk, client_factory=lambda _u: fake, token=token)
        )
        if outcomes[-1] != RUN_YIELDED:
            break
        shown = PlaylistJob.objects.get(pk=job.pk)
        assert shown.status == PlaylistJob.Status.RUNNING  # the page shows it at work
        token = sent[-1]["token"]

    assert outcomes == [RUN_YIELDED, RUN_YIELDED, RUN_FINISHED]
    job.refresh_from_db()
    assert job.status == PlaylistJob.Status.SUCCEEDED
    assert job.attempts == 1
    results = by_genre(job)
    for genre, tracks in LIBRARY.items():
        assert results[genre]["status"] == "created"
        assert results[genre]["tracksAdded"] == len(tracks)
        (made,) = fake.named(f"{genre} (from Likes)")
        assert sorted(made["items"]) == sorted(tracks)  # every track once
    assert len(fake.made()) == 3


def test_a_wait_for_the_budget_yields_the_job_and_the_genre_goes_on_without_duplicates(sent):
    user = make_listener()
    make_result(user, LIBRARY)
    fake = FakeSpotify()

    def no_slot() -> None:
        raise spotify.SpotifyRateLimited(
            "no Spotify request slot", retry_after=7, quota=False, reason="LIMITER_TIMEOUT"
        )

    # The second batch of the first genre (250 tracks) finds no slot in time.
    fake.script["add_items"] = [None, no_slot]
    job = playlist_job_start(user=user, genres=GENRES)

    assert playlist_job_run(job_id=job.pk, client_factory=lambda _u: fake) == RUN_YIELDED

    waiting = PlaylistJob.objects.get(pk=job.pk)
    assert waiting.status == PlaylistJob.Status.RUNNING
    assert by_genre(waiting)["swedish pop"]["status"] != "failed"
    assert sent[-1]["countdown"] == pytest.approx(7 + playlists.DUE_MARGIN_SECONDS)
    token = sent[-1]["token"]
    # Not before its wait is over; then its message takes it back.
    assert playlist_job_run(job_id=job.pk, client_factory=lambda _u: fake, token=token) == (
        RUN_NOT_CLAIMED
    )
    PlaylistJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())
    assert playlist_job_run(job_id=job.pk, client_factory=lambda _u: fake, token=token) == (
        RUN_FINISHED
    )

    job.refresh_from_db()
    assert job.status == PlaylistJob.Status.SUCCEEDED
    (pop,) = fake.named("swedish pop (from Likes)")
    assert sorted(pop["items"]) == sorted(LIBRARY["swedish pop"])
    assert by_genre(job)["swedish pop"]["tracksAdded"] == len(LIBRARY["swedish pop"])


def test_a_short_rate_limit_wait_yields_the_job_and_a_quota_still_stops_it(sent):
    user = make_listener()
    make_result(user, LIBRARY)
    fake = FakeSpotify()

    def rate_limited() -> None:
        raise spotify.SpotifyRateLimited("Too Many Requests", retry_after=30, quota=False)

    fake.script["create_playlist"] = [None, rate_limited]
    job = playlist_job_start(user=user, genres=GENRES)

    assert playlist_job_run(job_id=job.pk, client_factory=lambda _u: fake) == RUN_YIELDED
    assert sent[-1]["countdown"] == pytest.approx(30 + playlists.DUE_MARGIN_SECONDS)
    PlaylistJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())
    fake.script["create_playlist"] = ["quota"]
    token = sent[-1]["token"]

    assert playlist_job_run(job_id=job.pk, client_factory=lambda _u: fake, token=token) == (
        RUN_FINISHED
    )
    job.refresh_from_db()
    assert job.status == PlaylistJob.Status.PARTIAL
    assert job.error["error"] == "Paused by Spotify's quota"
    assert by_genre(job)["swedish pop"]["status"] == "created"
    assert len(fake.made()) == 1  # nothing created twice
