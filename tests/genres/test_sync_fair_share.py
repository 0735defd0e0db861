"""Scheduled runs take turns: at most SYNC_MAX_CONCURRENT_RUNS are in progress, the oldest due
first, and the next starts as soon as one ends, so the queue never holds a whole cycle's scans
ahead of a listener's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from genres.models import JobOrigin, Scan, SpotifyAccount, SyncSchedule
from genres.sync_runner import syncs_tick
from genres.sync_tasks import sync_run

pytestmark = pytest.mark.django_db


def listener(name: str, *, due_minutes_ago: int) -> Any:
    user = get_user_model().objects.create_user(f"spotify:{name}")
    SpotifyAccount.objects.create(user=user, spotify_id=name)
    SyncSchedule.objects.create(
        user=user,
        enabled=True,
        next_run_at=timezone.now() - timedelta(minutes=due_minutes_ago),
    )
    return user


def running_names() -> set[str]:
    rows = SyncSchedule.objects.filter(running_since__isnull=False).select_related("user")
    return {row.user.username.removeprefix("spotify:") for row in rows}


def test_the_tick_starts_only_as_many_runs_as_the_bound_oldest_due_first(enqueued, settings):
    settings.SYNC_MAX_CONCURRENT_RUNS = 2
    # Created in an order unlike their due order, so the ids' order cannot pass for it.
    for name, minutes in [("c", 30), ("e", 10), ("a", 50), ("d", 20), ("b", 40)]:
        listener(name, due_minutes_ago=minutes)

    first = syncs_tick()
    second = syncs_tick()

    assert first["started"] == 2
    assert second["started"] == 0
    assert running_names() == {"a", "b"}
    assert Scan.objects.count() == 2
    assert set(Scan.objects.values_list("origin", flat=True)) == {JobOrigin.SYNC}


def test_when_a_run_ends_its_driver_starts_the_next_due_run(enqueued, settings):
    settings.SYNC_MAX_CONCURRENT_RUNS = 1
    first = listener("first", due_minutes_ago=30)
    listener("second", due_minutes_ago=20)
    listener("third", due_minutes_ago=10)
    syncs_tick()
    assert running_names() == {"first"}
    Scan.objects.filter(user=first).update(
        status=Scan.Status.FAILED, error={"error": "Spotify is unavailable"}
    )

    outcome = sync_run(str(first.pk))

    assert outcome == "done"
    assert SyncSchedule.objects.get(user=first).last_result["status"] == "failed"
    assert running_names() == {"second"}


def test_a_listeners_sync_now_does_not_take_a_scheduled_runs_slot(enqueued, settings):
    settings.SYNC_MAX_CONCURRENT_RUNS = 1
    now_user = listener("now", due_minutes_ago=0)
    scan = Scan.objects.create(user=now_user, status=Scan.Status.RUNNING, sources=["liked"])
    SyncSchedule.objects.filter(user=now_user).update(
        running_since=timezone.now(), run_origin=JobOrigin.LISTENER, next_run_at=None, scan=scan
    )
    listener("due", due_minutes_ago=5)

    assert syncs_tick()["started"] == 1
    assert running_names() == {"now", "due"}
