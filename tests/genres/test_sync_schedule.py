"""Auto-sync's schedule with a fake clock: jittered next runs within their bounds, which runs
are due, one run at a time, a run's end scheduling the next, and stopping."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from genres.models import JobOrigin, Scan, SpotifyAccount, SyncSchedule
from genres.sync import (
    failed_result,
    sync_finish,
    sync_next_run_at,
    sync_start,
    sync_stop,
    sync_update,
    syncs_due,
    syncs_running,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def listener(name: str) -> Any:
    user = get_user_model().objects.create_user(f"spotify:{name}")
    SpotifyAccount.objects.create(user=user, spotify_id=name)
    return user


class Extreme(random.Random):
    """A draw at one end of the range."""

    def __init__(self, end: int) -> None:
        super().__init__()
        self.end = end

    def uniform(self, a: float, b: float) -> float:
        return a if self.end < 0 else b


def test_the_next_run_stays_within_ten_percent_of_the_interval_either_way(settings):
    settings.SYNC_JITTER_PERCENT = 10
    rng = random.Random(7)

    moments = [sync_next_run_at(interval_hours=6, now=NOW, rng=rng) for _ in range(500)]

    assert all(NOW + timedelta(minutes=324) <= m <= NOW + timedelta(minutes=396) for m in moments)
    # Jitter really spreads runs: not all in one minute, and on both sides of the interval.
    assert min(moments) < NOW + timedelta(hours=6) - timedelta(minutes=20)
    assert max(moments) > NOW + timedelta(hours=6) + timedelta(minutes=20)


def test_the_jitter_bounds_are_exactly_the_configured_share(settings):
    settings.SYNC_JITTER_PERCENT = 25

    early = sync_next_run_at(interval_hours=4, now=NOW, rng=Extreme(-1))
    late = sync_next_run_at(interval_hours=4, now=NOW, rng=Extreme(+1))

    assert early == NOW + timedelta(hours=3)
    assert late == NOW + timedelta(hours=5)


def test_no_jitter_means_exactly_the_interval(settings):
    settings.SYNC_JITTER_PERCENT = 0

    assert sync_next_run_at(interval_hours=6, now=NOW) == NOW + timedelta(hours=6)


@pytest.mark.django_db
def test_only_enabled_runs_whose_time_has_come_and_that_are_not_running_are_due():
    due, later, off, running, stopped = (listener(n) for n in ("a", "b", "c", "d", "e"))
    SyncSchedule.objects.create(user=due, enabled=True, next_run_at=NOW - timedelta(minutes=1))
    SyncSchedule.objects.create(user=later, enabled=True, next_run_at=NOW + timedelta(minutes=1))
    SyncSchedule.objects.create(user=off, enabled=False, next_run_at=NOW - timedelta(hours=1))
    SyncSchedule.objects.create(
        user=running, enabled=True, next_run_at=NOW - timedelta(hours=1), running_since=NOW
    )
    SyncSchedule.objects.create(
        user=stopped, enabled=False, next_run_at=None, stopped_reason="reauth"
    )

    assert syncs_due(now=NOW) == [due.pk]
    assert set(syncs_due(now=NOW + timedelta(minutes=2))) == {due.pk, later.pk}


@pytest.mark.django_db
def test_turning_it_on_schedules_with_jitter_and_clears_a_stop(settings):
    settings.SYNC_JITTER_PERCENT = 10
    user = listener("a")
    SyncSchedule.objects.create(user=user, enabled=False, stopped_reason="reauth")

    schedule = sync_update(user=user, enabled=True, interval_hours=2, now=NOW, rng=Extreme(+1))

    assert schedule.enabled
    assert schedule.stopped_reason == ""
    assert schedule.next_run_at == NOW + timedelta(hours=2.2)


@pytest.mark.django_db
def test_changing_the_interval_while_on_moves_the_next_run():
    user = listener("a")
    sync_update(user=user, enabled=True, interval_hours=48, now=NOW, rng=Extreme(-1))

    schedule = sync_update(user=user, interval_hours=1, now=NOW, rng=Extreme(-1))

    assert schedule.next_run_at == NOW + timedelta(minutes=54)


@pytest.mark.django_db
def test_a_second_start_while_a_run_is_in_progress_starts_nothing(enqueued):
    user = listener("a")

    first, started = sync_start(user=user, origin=JobOrigin.SYNC, now=NOW)
    again, started_again = sync_start(user=user, origin=JobOrigin.LISTENER, now=NOW)

    assert started
    assert not started_again
    assert again.scan_id == first.scan_id
    assert again.run_origin == JobOrigin.SYNC
    assert Scan.objects.get(pk=first.scan_id).origin == JobOrigin.SYNC
    assert Scan.objects.filter(user=user).count() == 1


@pytest.mark.django_db
def test_a_run_joins_the_scan_the_listener_already_has_going(enqueued):
    user = listener("a")
    own = Scan.objects.create(user=user, sources=["liked"])

    schedule, started = sync_start(user=user, origin=JobOrigin.SYNC, now=NOW)

    assert started
    assert schedule.scan_id == own.pk
    own.refresh_from_db()
    assert own.origin == JobOrigin.LISTENER  # the listener's own scan keeps its priority


@pytest.mark.django_db
def test_the_end_of_a_run_records_it_and_schedules_the_next(enqueued):
    user = listener("a")
    sync_update(user=user, enabled=True, interval_hours=6, now=NOW)
    sync_start(user=user, origin=JobOrigin.SYNC, now=NOW)
    end = NOW + timedelta(minutes=3)

    assert sync_finish(user_id=user.pk, result=failed_result("boom"), now=end, rng=Extreme(-1))

    schedule = SyncSchedule.objects.get(user=user)
    assert schedule.running_since is None
    assert schedule.last_run_at == end
    assert schedule.next_run_at == end + timedelta(hours=6) * 0.9
    assert schedule.last_result["error"] == "boom"
    assert schedule.failures == 1
    assert syncs_running(now=end) == ([], [])
    # A second driver ending the same run changes nothing.
    assert not sync_finish(user_id=user.pk, result=failed_result("again"), now=end)
    assert SyncSchedule.objects.get(user=user).failures == 1


@pytest.mark.django_db
def test_a_run_of_a_listener_spotify_refuses_stops_auto_sync_instead(enqueued):
    user = listener("a")
    sync_update(user=user, enabled=True, now=NOW)
    SpotifyAccount.objects.filter(user=user).update(needs_reauth=True)

    schedule, started = sync_start(user=user, origin=JobOrigin.SYNC, now=NOW)

    assert not started
    assert not schedule.enabled
    assert schedule.stopped_reason == SyncSchedule.Stopped.REAUTH
    assert schedule.next_run_at is None
    assert not Scan.objects.filter(user=user).exists()
    assert syncs_due(now=NOW + timedelta(days=30)) == []


@pytest.mark.django_db
def test_stopping_turns_it_off_with_the_reason():
    user = listener("a")
    SyncSchedule.objects.create(user=user, enabled=True, next_run_at=NOW)

    assert sync_stop(user_id=user.pk, reason=SyncSchedule.Stopped.DISCONNECTED)

    schedule = SyncSchedule.objects.get(user=user)
    assert (schedule.enabled, schedule.stopped_reason) == (False, "disconnected")
    assert not sync_stop(user_id=user.pk, reason=SyncSchedule.Stopped.REAUTH)
