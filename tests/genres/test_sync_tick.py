"""The beat's tick: it starts the runs that are due (background priority, each once) and
advances runs in progress whose own task was lost; the run task polls with a backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from genres.models import JobOrigin, Scan, SpotifyAccount, SyncSchedule
from genres.sync_runner import syncs_tick
from genres.sync_tasks import SYNC_POLL_MAX_SECONDS, poll_countdown

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def listener(name: str, **schedule: Any) -> Any:
    user = get_user_model().objects.create_user(f"spotify:{name}")
    SpotifyAccount.objects.create(user=user, spotify_id=name)
    SyncSchedule.objects.create(user=user, **schedule)
    return user


def test_the_tick_starts_each_due_run_once_at_background_priority(enqueued):
    due = listener("due", enabled=True, next_run_at=NOW - timedelta(minutes=5))
    listener("later", enabled=True, next_run_at=NOW + timedelta(minutes=5))
    listener("off", enabled=False, next_run_at=NOW - timedelta(minutes=5))

    first = syncs_tick(now=NOW)
    second = syncs_tick(now=NOW + timedelta(seconds=60))

    assert first["started"] == 1
    assert second["started"] == 0
    scan = Scan.objects.get()
    assert scan.user_id == due.pk
    assert scan.origin == JobOrigin.SYNC
    assert SyncSchedule.objects.get(user=due).running_since == NOW


def test_the_tick_ends_a_run_whose_scan_failed_and_schedules_the_next(enqueued):
    user = listener("a", enabled=True, interval_hours=6, next_run_at=NOW - timedelta(minutes=1))
    syncs_tick(now=NOW)
    Scan.objects.update(status=Scan.Status.FAILED, error={"error": "Spotify is unavailable"})

    counts = syncs_tick(now=NOW + timedelta(minutes=1))

    assert counts["ended"] == 1
    schedule = SyncSchedule.objects.get(user=user)
    assert schedule.running_since is None
    assert schedule.last_result["error"] == "Spotify is unavailable"
    assert NOW + timedelta(hours=5) < schedule.next_run_at < NOW + timedelta(hours=7)


def test_one_listener_failing_to_start_does_not_stop_the_others(enqueued, monkeypatch):
    from genres import sync_runner

    real = sync_runner.sync_start
    first = listener("first", enabled=True, next_run_at=NOW - timedelta(minutes=2))
    listener("second", enabled=True, next_run_at=NOW - timedelta(minutes=1))

    def start(*, user: Any, **kwargs: Any) -> Any:
        if user.pk == first.pk:
            raise RuntimeError("database hiccup")
        return real(user=user, **kwargs)

    monkeypatch.setattr(sync_runner, "sync_start", start)

    assert syncs_tick(now=NOW)["started"] == 1


def test_a_waiting_run_is_polled_sooner_first_then_at_most_every_30_seconds():
    waits = [poll_countdown(n) for n in range(10)]

    assert waits[:4] == [2, 4, 8, 16]
    assert max(waits) == SYNC_POLL_MAX_SECONDS
    assert waits == sorted(waits)
