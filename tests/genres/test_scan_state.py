"""Scan state transitions (compare-and-set), starting rules, recovery, and call statistics."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from genres import call_stats, jobs, scans, tasks
from genres.models import PlaylistJob, Scan, ScanResult, SpotifyAccount, SpotifyCallBucket
from genres.scans import scan_results_prune
from genres.spotify import CallRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def user(db: Any) -> Any:
    user = get_user_model().objects.create_user("spotify:alice")
    SpotifyAccount.objects.create(user=user, spotify_id="alice")
    return user


def scan_of(user: Any, **fields: Any) -> Scan:
    return Scan.objects.create(user=user, sources=["liked"], **fields)


def test_a_queued_scan_is_claimed_once_and_a_second_claim_fails(user):
    scan = scan_of(user)

    first = scans.scan_claim(scan_id=scan.pk, worker="w1")
    second = scans.scan_claim(scan_id=scan.pk, worker="w2")

    assert first is not None
    assert first.status == Scan.Status.RUNNING
    assert first.claimed_by == "w1"
    assert first.attempts == 1
    assert first.started_at is not None
    assert second is None


def test_a_running_scan_with_a_stale_heartbeat_is_taken_over(user):
    started = timezone.now() - timedelta(minutes=10)
    stale = scan_of(
        user,
        status=Scan.Status.RUNNING,
        claimed_by="dead",
        started_at=started,
        heartbeat_at=timezone.now() - jobs.HEARTBEAT_STALE - timedelta(seconds=1),
    )

    taken = scans.scan_claim(scan_id=stale.pk, worker="w2")

    assert taken.claimed_by == "w2"
    assert taken.started_at == started
    # The dead worker, should it wake up, can no longer write progress or finish.
    assert scans.scan_fail(scan_id=stale.pk, worker="dead", error={}) is False
    assert Scan.objects.get(pk=stale.pk).status == Scan.Status.RUNNING


def test_a_live_running_scan_is_not_taken(user):
    live = scan_of(user, status=Scan.Status.RUNNING, claimed_by="w1", heartbeat_at=timezone.now())

    assert scans.scan_claim(scan_id=live.pk, worker="w2") is None


def test_a_paused_scan_is_claimable_only_once_its_resume_time_has_passed(user):
    later = scan_of(
        user, status=Scan.Status.PAUSED, resume_at=timezone.now() + timedelta(minutes=5)
    )
    assert scans.scan_claim(scan_id=later.pk, worker="w1") is None

    Scan.objects.filter(pk=later.pk).update(resume_at=timezone.now() - timedelta(seconds=1))
    resumed = scans.scan_claim(scan_id=later.pk, worker="w1")

    assert resumed.status == Scan.Status.RUNNING
    assert resumed.resume_at is None
    assert resumed.error is None


@pytest.mark.parametrize("status", [Scan.Status.SUCCEEDED, Scan.Status.FAILED])
def test_a_finished_scan_is_never_claimed(user, status):
    done = scan_of(user, status=status)

    assert scans.scan_claim(scan_id=done.pk, worker="w1") is None
    assert scans.scan_claim(scan_id="not-a-uuid", worker="w1") is None


def test_pause_and_fail_need_the_claim(user):
    scan = scan_of(user)
    scans.scan_claim(scan_id=scan.pk, worker="w1")
    resume = timezone.now() + timedelta(hours=1)

    assert scans.scan_pause(scan_id=scan.pk, worker="w2", resume_at=resume, error={}) is False
    assert scans.scan_pause(scan_id=scan.pk, worker="w1", resume_at=resume, error={"e": 1})

    paused = Scan.objects.get(pk=scan.pk)
    assert paused.status == Scan.Status.PAUSED
    assert paused.claimed_by == ""
    assert scans.scan_fail(scan_id=scan.pk, worker="w1", error={}) is False


def test_the_database_refuses_a_second_active_scan_for_one_listener(user):
    scan_of(user, status=Scan.Status.PAUSED, resume_at=timezone.now())

    with pytest.raises(IntegrityError), transaction.atomic():
        scan_of(user)
    scan_of(user, status=Scan.Status.FAILED)


def test_scan_start_returns_the_active_scan_instead_of_a_second_one(user):
    first, created = scans.scan_start(user=user, sources=["liked"], refresh=False)
    again, created_again = scans.scan_start(user=user, sources=["liked"], refresh=True)

    assert created is True
    assert created_again is False
    assert again.pk == first.pk


def test_scan_start_refuses_a_user_without_a_spotify_account(db):
    staff = get_user_model().objects.create_user("operator", is_staff=True)

    with pytest.raises(scans.ScanInputError):
        scans.scan_start(user=staff, sources=["liked"])


def test_sources_are_validated_and_de_duplicated():
    playlist = "playlist:4aawyAB9vmqN3uQ7FjRGTy"

    assert scans.normalize_sources(None) == ["liked"]
    assert scans.normalize_sources(["liked", playlist, "liked"]) == ["liked", playlist]
    for bad in ("liked", [], [None], ["playlist:a b"], ["playlist:é"], ["Liked"]):
        with pytest.raises(scans.ScanInputError):
            scans.normalize_sources(bad)


def test_recovery_picks_due_paused_dead_running_and_lost_queued_scans(enqueued):
    now = timezone.now()
    users = [get_user_model().objects.create_user(f"spotify:u{n}") for n in range(6)]
    due = scan_of(users[0], status=Scan.Status.PAUSED, resume_at=now - timedelta(seconds=1))
    scan_of(users[1], status=Scan.Status.PAUSED, resume_at=now + timedelta(minutes=1))
    dead = scan_of(users[2], status=Scan.Status.RUNNING, heartbeat_at=now - timedelta(minutes=3))
    scan_of(users[3], status=Scan.Status.RUNNING, heartbeat_at=now)
    lost = scan_of(users[4])
    Scan.objects.filter(pk=lost.pk).update(created_at=now - timedelta(minutes=5))
    scan_of(users[5])  # queued a moment ago: its message is still on its way

    result = tasks.jobs_recover()

    assert sorted(enqueued) == sorted(str(s.pk) for s in (due, dead, lost))
    assert result["scans"] == 3


def test_call_statistics_are_bucketed_per_minute_and_endpoint(monkeypatch):
    # One fixed minute, so the test cannot straddle a bucket boundary.
    fixed = timezone.now().replace(second=30)
    monkeypatch.setattr(call_stats.timezone, "now", lambda: fixed)
    recorder = call_stats.SpotifyCallRecorder(flush_every=3600)
    for status, reason in [(200, None), (200, None), (429, None), (429, "QUOTA_EXCEEDED")]:
        recorder.record(CallRecord("GET", "GET /artists/{id}", status, 40, None, reason))
    recorder.record(CallRecord("GET", "GET /me/tracks", 503, 900, None, None))
    recorder.record(CallRecord("GET", "GET /me/tracks", 0, 3000, None, None))
    recorder.record(CallRecord("GET", "GET /me/tracks", 404, 10, None, None))
    recorder.maybe_flush()
    assert not SpotifyCallBucket.objects.exists()

    recorder.flush()
    recorder.record(CallRecord("GET", "GET /artists/{id}", 200, 80, None, None))
    recorder.flush()

    artists = SpotifyCallBucket.objects.get(endpoint="GET /artists/{id}")
    assert (artists.calls, artists.ok, artists.rate_limited, artists.quota_exceeded) == (5, 3, 1, 1)
    assert (artists.total_ms, artists.max_ms) == (240, 80)
    tracks = SpotifyCallBucket.objects.get(endpoint="GET /me/tracks")
    assert (tracks.server_errors, tracks.network_errors, tracks.client_errors) == (1, 1, 1)
    assert tracks.max_ms == 3000
    assert recorder.calls == 8


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_thread_beats_only_while_the_claim_is_ours(monkeypatch):
    monkeypatch.setattr(jobs, "HEARTBEAT_EVERY", timedelta(milliseconds=20))
    users = [get_user_model().objects.create_user(f"spotify:u{n}") for n in range(2)]
    long_ago = timezone.now() - timedelta(minutes=10)
    ours = scan_of(users[0], status=Scan.Status.RUNNING, claimed_by="w1", heartbeat_at=long_ago)
    theirs = scan_of(users[1], status=Scan.Status.RUNNING, claimed_by="w2", heartbeat_at=long_ago)

    with scans.scan_heartbeat(scan_id=ours.pk, worker="w1"):
        deadline = time.monotonic() + 5
        while Scan.objects.get(pk=ours.pk).heartbeat_at == long_ago:
            assert time.monotonic() < deadline, "no heartbeat within 5 s"
            time.sleep(0.01)
    with scans.scan_heartbeat(scan_id=theirs.pk, worker="w1"):
        time.sleep(0.1)

    assert Scan.objects.get(pk=ours.pk).heartbeat_at > timezone.now() - timedelta(seconds=5)
    assert Scan.objects.get(pk=theirs.pk).heartbeat_at == long_ago


def test_old_results_are_pruned_except_those_a_playlist_job_still_uses(user):
    scans = []
    for age in range(6):
        scan = scan_of(user, status=Scan.Status.SUCCEEDED)
        result = ScanResult.objects.create(scan=scan, user=user, payload={})
        ScanResult.objects.filter(pk=result.pk).update(
            created_at=timezone.now() - timedelta(hours=10 - age)
        )
        scans.append(scan)
    PlaylistJob.objects.create(user=user, scan=scans[0], status=PlaylistJob.Status.RUNNING)
    PlaylistJob.objects.create(user=user, scan=scans[1], status=PlaylistJob.Status.SUCCEEDED)

    assert scan_results_prune(user_id=user.pk) == 2

    kept = set(ScanResult.objects.values_list("scan_id", flat=True))
    assert kept == {scans[0].pk, scans[3].pk, scans[4].pk, scans[5].pk}
    assert Scan.objects.count() == 6
