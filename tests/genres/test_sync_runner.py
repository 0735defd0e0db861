"""A sync run's steps after its scan, with a recording remover instead of Spotify: the plan
(only tracks not in the baseline are new), the playlist job at the run's origin, removal of
unliked tracks on and off, failures, and one driver at a time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from genres.models import (
    GenrePlaylist,
    JobOrigin,
    PlaylistJob,
    Scan,
    ScanResult,
    SpotifyAccount,
    SyncSchedule,
)
from genres.sync import RUN_STALE
from genres.sync_runner import (
    LEASE,
    SYNC_BUSY,
    SYNC_DONE,
    SYNC_IDLE,
    SYNC_WAITING,
    sync_advance,
)

pytestmark = pytest.mark.django_db

A, B, C, D = ("a" * 22, "b" * 22, "c" * 22, "d" * 22)


class Remover:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.fail = fail

    def remove_items(self, playlist_id: str, uris: Sequence[str]) -> None:
        self.calls.append((playlist_id, list(uris)))
        if self.fail:
            raise RuntimeError("Spotify said no")


def scanned(user: Any, genres: dict[str, list[str]], status: str = "succeeded") -> Scan:
    scan = Scan.objects.create(user=user, status=status, step=Scan.Step.DONE, sources=["liked"])
    if status == Scan.Status.SUCCEEDED:
        ScanResult.objects.create(
            scan=scan,
            user=user,
            payload={
                "genres": [{"name": n, "count": len(t), "trackIds": t} for n, t in genres.items()],
                "unclassified": {"count": 0, "trackIds": []},
                "truncated": False,
            },
        )
    return scan


@pytest.fixture
def alice() -> Any:
    user = get_user_model().objects.create_user("spotify:alice")
    SpotifyAccount.objects.create(user=user, spotify_id="alice")
    GenrePlaylist.objects.create(user=user, genre="jazz", playlist_id="pj", name="jazz", url="")
    GenrePlaylist.objects.create(user=user, genre="pop", playlist_id="pp", name="pop", url="")
    return user


def running(user: Any, scan: Scan, **fields: Any) -> SyncSchedule:
    defaults = {
        "enabled": True,
        "running_since": timezone.now(),
        "scan": scan,
        "run_origin": JobOrigin.SYNC,
        "baseline": {
            "jazz": {"playlistId": "pj", "tracks": [A]},
            "pop": {"playlistId": "pp", "tracks": [B]},
        },
    }
    return SyncSchedule.objects.create(user=user, **{**defaults, **fields})


def test_nothing_new_ends_the_run_without_a_playlist_job(alice, enqueued):
    running(alice, scanned(alice, {"jazz": [A], "pop": [B]}))

    assert sync_advance(user_id=alice.pk, remover_factory=lambda *_: Remover()) == SYNC_DONE

    schedule = SyncSchedule.objects.get(user=alice)
    assert schedule.last_result["status"] == "succeeded"
    assert schedule.last_result["tracksAdded"] == 0
    assert schedule.running_since is None
    assert not PlaylistJob.objects.exists()


def test_only_genres_with_new_tracks_get_a_job_at_the_runs_origin(alice, enqueued):
    running(alice, scanned(alice, {"jazz": [A], "pop": [B, C], "rock": [D]}), run_origin="listener")

    assert sync_advance(user_id=alice.pk) == SYNC_WAITING

    job = PlaylistJob.objects.get()
    assert job.genres == ["pop"]  # rock has no Swedify playlist: none is made for it
    assert job.origin == JobOrigin.LISTENER
    assert SyncSchedule.objects.get(user=alice).playlist_job_id == job.pk
    # Advancing again while the job is queued starts nothing more.
    assert sync_advance(user_id=alice.pk) == SYNC_WAITING
    assert PlaylistJob.objects.count() == 1


def test_a_finished_job_ends_the_run_with_what_it_added_and_a_new_baseline(alice, enqueued):
    scan = scanned(alice, {"jazz": [A], "pop": [B, C]})
    schedule = running(alice, scan)
    sync_advance(user_id=alice.pk)
    job = PlaylistJob.objects.get()
    entry = {"genre": "pop", "status": "updated", "playlistId": "pp", "url": "https://x/pp"}
    PlaylistJob.objects.filter(pk=job.pk).update(
        status="succeeded", results=[{**entry, "tracksAdded": 1, "_done": True}]
    )

    assert sync_advance(user_id=alice.pk) == SYNC_DONE

    schedule.refresh_from_db()
    assert schedule.last_result["tracksAdded"] == 1
    assert schedule.last_result["playlistsUpdated"] == 1
    assert schedule.last_result["playlists"][0]["genre"] == "pop"
    assert schedule.baseline["pop"] == {"playlistId": "pp", "tracks": [B, C]}
    assert schedule.playlist_job_id is None


def test_a_failed_genre_keeps_its_baseline_and_fails_the_run(alice, enqueued):
    schedule = running(alice, scanned(alice, {"jazz": [A], "pop": [B, C]}))
    sync_advance(user_id=alice.pk)
    failed = {"genre": "pop", "status": "failed", "error": "Spotify failed: 503", "_done": True}
    PlaylistJob.objects.update(status="failed", results=[failed])

    sync_advance(user_id=alice.pk)

    schedule.refresh_from_db()
    assert schedule.last_result["status"] == "failed"
    assert "Spotify failed: 503" in schedule.last_result["error"]
    assert schedule.baseline["pop"]["tracks"] == [B]  # C is still new next time
    assert schedule.failures == 1


def test_with_remove_unliked_a_track_no_longer_liked_is_removed(alice, enqueued):
    remover = Remover()
    schedule = running(alice, scanned(alice, {"jazz": [], "pop": [B]}), remove_unliked=True)

    sync_advance(user_id=alice.pk, remover_factory=lambda *_: remover)

    assert remover.calls == [("pj", [f"spotify:track:{A}"])]
    schedule.refresh_from_db()
    assert schedule.last_result["tracksRemoved"] == 1
    assert schedule.last_result["status"] == "succeeded"
    assert schedule.baseline["jazz"]["tracks"] == []


def test_without_remove_unliked_nothing_is_removed(alice, enqueued):
    remover = Remover()
    running(alice, scanned(alice, {"pop": [B]}), remove_unliked=False)

    sync_advance(user_id=alice.pk, remover_factory=lambda *_: remover)

    assert remover.calls == []
    assert SyncSchedule.objects.get(user=alice).last_result["tracksRemoved"] == 0


def test_a_track_that_moved_genre_but_is_still_liked_is_not_removed(alice, enqueued):
    remover = Remover()
    running(alice, scanned(alice, {"pop": [B, A]}), remove_unliked=True)

    sync_advance(user_id=alice.pk, remover_factory=lambda *_: remover)

    assert remover.calls == []


def test_a_failed_removal_keeps_the_track_for_the_next_run(alice, enqueued):
    schedule = running(alice, scanned(alice, {"pop": [B]}), remove_unliked=True)

    sync_advance(user_id=alice.pk, remover_factory=lambda *_: Remover(fail=True))

    schedule.refresh_from_db()
    assert schedule.last_result["status"] == "failed"
    assert "could not remove" in schedule.last_result["error"]
    assert schedule.baseline["jazz"]["tracks"] == [A]


def test_a_scan_that_failed_on_the_sign_in_stops_auto_sync(alice, enqueued):
    running(alice, scanned(alice, {}, status=Scan.Status.FAILED))
    SpotifyAccount.objects.filter(user=alice).update(needs_reauth=True)

    assert sync_advance(user_id=alice.pk) == SYNC_DONE

    schedule = SyncSchedule.objects.get(user=alice)
    assert (schedule.enabled, schedule.stopped_reason) == (False, "reauth")
    assert schedule.last_result["status"] == "failed"


def test_a_scan_that_failed_otherwise_fails_the_run_and_keeps_auto_sync_on(alice, enqueued):
    scan = scanned(alice, {}, status=Scan.Status.FAILED)
    Scan.objects.filter(pk=scan.pk).update(error={"error": "Spotify is unavailable"})
    running(alice, scan)

    sync_advance(user_id=alice.pk)

    schedule = SyncSchedule.objects.get(user=alice)
    assert schedule.enabled
    assert schedule.next_run_at is not None
    assert schedule.last_result["error"] == "Spotify is unavailable"


def test_a_run_waits_for_its_scan_and_gives_up_once_stale(alice, enqueued):
    scan = scanned(alice, {}, status=Scan.Status.RUNNING)
    running(alice, scan)
    now = timezone.now()

    assert sync_advance(user_id=alice.pk, now=now) == SYNC_WAITING
    assert sync_advance(user_id=alice.pk, now=now + RUN_STALE + timedelta(minutes=1)) == SYNC_DONE
    assert SyncSchedule.objects.get(user=alice).last_result["status"] == "failed"


def test_while_one_driver_holds_the_run_another_is_told_busy(alice, enqueued):
    now = timezone.now()
    running(alice, scanned(alice, {"jazz": [A]}), advancing_until=now + LEASE)

    assert sync_advance(user_id=alice.pk, now=now) == SYNC_BUSY
    # A lease that ran out (its driver died) is taken over.
    assert sync_advance(user_id=alice.pk, now=now + LEASE + timedelta(seconds=1)) == SYNC_DONE
    assert sync_advance(user_id=alice.pk, now=now) == SYNC_IDLE


def test_without_a_baseline_the_last_job_that_filled_a_playlist_stands_in(alice, enqueued):
    old = scanned(alice, {"jazz": [A], "pop": [B]})
    PlaylistJob.objects.create(
        user=alice,
        scan=old,
        status="succeeded",
        genres=["jazz", "pop"],
        results=[
            {"genre": "jazz", "status": "created", "playlistId": "pj", "_done": True},
            {"genre": "pop", "status": "created", "playlistId": "pp", "_done": True},
        ],
    )
    Scan.objects.filter(pk=old.pk).update(status=Scan.Status.SUCCEEDED)
    running(alice, scanned(alice, {"jazz": [A], "pop": [B, C]}), baseline={})

    sync_advance(user_id=alice.pk)

    job = PlaylistJob.objects.exclude(scan=old).get()
    assert job.genres == ["pop"]  # jazz is known to hold A already
