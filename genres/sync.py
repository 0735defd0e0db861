"""Auto-sync: a listener's genre playlists keep receiving their new likes.

A listener turns it on ("Keep my genre playlists up to date"); every ``interval_hours``
(jittered, so listeners who turned it on together do not all sync in the same minute) the
beat starts a *run*: an incremental rescan, then the new likes go into the genre playlists
Swedify already made for the listener (genres.sync_runner). A run is recorded on the
listener's ``SyncSchedule``: ``running_since`` while it runs, then ``last_run_at``,
``last_result`` and the next ``next_run_at``.

Invariants:

- At most one run per listener at a time: a run starts with a compare-and-set on
  ``running_since``; a second trigger answers with the run in progress.
- Scheduled runs are background work (``JobOrigin.SYNC``: background priority under the
  shared Spotify budget); "Sync now" is a listener waiting (``JobOrigin.LISTENER``).
- Spotify refusing the listener's sign-in (``invalid_grant``) or the account going away stops
  auto-sync (``enabled`` off, ``stopped_reason`` set) until the listener turns it on again.
- At most ``SYNC_MAX_CONCURRENT_RUNS`` scheduled runs are in progress at a time (about the
  number of worker processes). Jobs run in slices and a background job yields its worker to
  the back of the one Celery queue, so every background scan queued ahead of a listener's
  scan is one more delivery the listener waits through: with all due runs started at once
  (a thousand after a cycle's worth of listeners), an interactive scan waited minutes for
  seconds of work. So the beat's tick starts only the free slots' worth of due runs, oldest
  ``next_run_at`` first, and each run's driver starts the next due ones as its run ends; the
  tick (every minute) is the safety net when a driver is lost. The queue then holds only a
  few background messages, and a listener's scan waits behind at most those. Two drivers
  ending at the same moment may each fill the same free slot, so the bound can be exceeded
  by the few runs ending at once, never grow with the number due. "Sync now" runs are the
  listener's own and never wait for a slot.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from typing import Any, TypedDict

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy

from genres.jobs import job_enqueue
from genres.models import JobOrigin, Scan, SpotifyAccount, SyncSchedule
from genres.scans import ScanInputError, scan_start
from genres.selectors import iso

logger = logging.getLogger(__name__)

# The Celery task that drives a run to its end (genres.sync_tasks), queued by name.
SYNC_RUN_TASK = "genres.sync_tasks.sync_run"

MIN_INTERVAL_HOURS = 1
MAX_INTERVAL_HOURS = 168
# A run that has not finished this long after it started lost its driver (a worker died
# between steps and the beat's tick could not advance it): the next tick ends it as failed.
RUN_STALE = timedelta(hours=12)
# Sources a run rescans when the listener has never scanned (their last scan's otherwise).
DEFAULT_SOURCES = ["liked"]

# Why auto-sync turned itself off, as the home page says it.
STOPPED_MESSAGES = {
    SyncSchedule.Stopped.REAUTH: gettext_lazy(
        "Auto-sync stopped: Spotify asked you to sign in again. Reconnect Spotify, then turn "
        "it on again."
    ),
    SyncSchedule.Stopped.DISCONNECTED: gettext_lazy(
        "Auto-sync stopped: Spotify was disconnected. Sign in with Spotify, then turn it on again."
    ),
}


class SyncInputError(ValueError):
    """A sync request the client must change; the message says what (answered with 400)."""


class SyncConflict(ValueError):
    """A sync request that cannot be served in the listener's current state (409)."""


class SyncResult(TypedDict):
    """The contract's ``lastResult``, plus the per-playlist detail the home page shows."""

    status: str  # "succeeded" | "failed"
    tracksAdded: int
    tracksRemoved: int
    playlistsUpdated: int
    error: str | None
    playlists: list[dict[str, Any]]


def default_interval_hours() -> int:
    return int(getattr(settings, "SYNC_DEFAULT_INTERVAL_HOURS", 6))


def sync_max_concurrent_runs() -> int:
    """Scheduled runs in progress at a time (``SYNC_MAX_CONCURRENT_RUNS``, at least 1)."""
    return max(1, int(getattr(settings, "SYNC_MAX_CONCURRENT_RUNS", 2)))


def jitter_fraction() -> float:
    """How far a run may move from its interval, as a fraction of it, either way."""
    percent = int(getattr(settings, "SYNC_JITTER_PERCENT", 10))
    return min(max(percent, 0), 50) / 100


def sync_next_run_at(
    *, interval_hours: int, now: datetime, rng: random.Random | None = None
) -> datetime:
    """``now`` plus the interval, moved by up to ``SYNC_JITTER_PERCENT`` of it either way."""
    spread = jitter_fraction()
    draw = (rng or random).uniform(-spread, spread)
    return now + timedelta(hours=interval_hours) * (1 + draw)


def sync_schedule_for(*, user: AbstractBaseUser) -> SyncSchedule:
    """The listener's schedule, or an unsaved one with the defaults (auto-sync off)."""
    schedule = SyncSchedule.objects.filter(user_id=user.pk).first()
    if schedule is None:
        schedule = SyncSchedule(user_id=user.pk, interval_hours=default_interval_hours())
    return schedule


def sync_json(schedule: SyncSchedule) -> dict[str, Any]:
    """The contract's sync object (plus additive fields: running, stoppedReason)."""
    return {
        "enabled": schedule.enabled,
        "intervalHours": schedule.interval_hours,
        "removeUnliked": schedule.remove_unliked,
        "lastRunAt": iso(schedule.last_run_at),
        "nextRunAt": iso(schedule.next_run_at) if schedule.enabled else None,
        "lastResult": _public_result(schedule.last_result),
        "running": schedule.running_since is not None,
        "stoppedReason": schedule.stopped_reason or None,
    }


def _public_result(result: dict[str, Any] | None) -> dict[str, Any] | None:
    if not result:
        return None
    keys = ("status", "tracksAdded", "tracksRemoved", "playlistsUpdated", "error", "playlists")
    return {key: result.get(key) for key in keys}


def _validated(
    enabled: object, interval_hours: object, remove_unliked: object
) -> tuple[bool | None, int | None, bool | None]:
    if enabled is not None and not isinstance(enabled, bool):
        raise SyncInputError('"enabled" must be true or false')
    if remove_unliked is not None and not isinstance(remove_unliked, bool):
        raise SyncInputError('"removeUnliked" must be true or false')
    if interval_hours is not None:
        if isinstance(interval_hours, bool) or not isinstance(interval_hours, int):
            raise SyncInputError('"intervalHours" must be a whole number of hours')
        if not MIN_INTERVAL_HOURS <= interval_hours <= MAX_INTERVAL_HOURS:
            raise SyncInputError(
                f'"intervalHours" must be from {MIN_INTERVAL_HOURS} to {MAX_INTERVAL_HOURS}'
            )
    return enabled, interval_hours, remove_unliked


def sync_update(
    *,
    user: AbstractBaseUser,
    enabled: object = None,
    interval_hours: object = None,
    remove_unliked: object = None,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> SyncSchedule:
    """Change the listener's auto-sync settings (None leaves a setting as it is).

    Turning it on (or changing the interval while on) schedules the next run one jittered
    interval from now; turning it on also clears why it had stopped. Raises SyncInputError
    for a value out of range or of the wrong type, SyncConflict when Spotify needs the
    listener to sign in again first.
    """
    enabled, interval_hours, remove_unliked = _validated(enabled, interval_hours, remove_unliked)
    now = now or timezone.now()
    with transaction.atomic():
        # Race: two PUTs at once would both create the row; the account row lock orders them.
        account = SpotifyAccount.objects.select_for_update().filter(user_id=user.pk).first()
        if enabled and (account is None or account.needs_reauth):
            raise SyncConflict("Sign in with Spotify again before turning auto-sync on")
        schedule, _ = SyncSchedule.objects.select_for_update().get_or_create(
            user_id=user.pk, defaults={"interval_hours": default_interval_hours()}
        )
        reschedule = False
        if interval_hours is not None and interval_hours != schedule.interval_hours:
            schedule.interval_hours = interval_hours
            reschedule = schedule.enabled
        if remove_unliked is not None:
            schedule.remove_unliked = remove_unliked
        if enabled is not None and enabled != schedule.enabled:
            schedule.enabled = enabled
            reschedule = enabled
            if enabled:
                schedule.stopped_reason = SyncSchedule.Stopped.NONE
            else:
                schedule.next_run_at = None
        if reschedule:
            schedule.next_run_at = sync_next_run_at(
                interval_hours=schedule.interval_hours, now=now, rng=rng
            )
        schedule.save()
    return schedule


def sync_stop(*, user_id: int, reason: str) -> bool:
    """Turn auto-sync off because it cannot go on (``SyncSchedule.Stopped``); the home page
    says why. True if it was on."""
    return bool(
        SyncSchedule.objects.filter(user_id=user_id, enabled=True).update(
            enabled=False, next_run_at=None, stopped_reason=reason
        )
    )


def syncs_due(*, now: datetime | None = None) -> list[int]:
    """User ids whose scheduled run is due and not running."""
    now = now or timezone.now()
    due = SyncSchedule.objects.filter(
        enabled=True, next_run_at__lte=now, running_since__isnull=True
    )
    return list(due.order_by("next_run_at").values_list("user_id", flat=True))


def syncs_background_running() -> int:
    """How many scheduled (background) runs are in progress: what the concurrency bound counts."""
    return SyncSchedule.objects.filter(
        running_since__isnull=False, run_origin=JobOrigin.SYNC
    ).count()


def syncs_running(*, now: datetime | None = None) -> tuple[list[int], list[int]]:
    """(user ids of runs in progress, those of them started longer ago than RUN_STALE)."""
    now = now or timezone.now()
    running = SyncSchedule.objects.filter(running_since__isnull=False)
    stale = running.filter(running_since__lt=now - RUN_STALE)
    return (
        list(running.values_list("user_id", flat=True)),
        list(stale.values_list("user_id", flat=True)),
    )


def sync_start(
    *, user: AbstractBaseUser, origin: str, now: datetime | None = None
) -> tuple[SyncSchedule, bool]:
    """Start a run for the listener now, or answer with the one in progress.

    Returns ``(schedule, started)``. The run's incremental scan is started (or, when the
    listener's own scan is already going, that scan is the run's) and the run's driver task
    is queued once the transaction commits. A listener Spotify refuses is stopped instead
    (``started`` False, ``stopped_reason`` set).
    """
    now = now or timezone.now()
    with transaction.atomic():
        account = SpotifyAccount.objects.select_for_update().filter(user_id=user.pk).first()
        schedule, _ = SyncSchedule.objects.get_or_create(
            user_id=user.pk, defaults={"interval_hours": default_interval_hours()}
        )
        if account is None or account.needs_reauth:
            reason = (
                SyncSchedule.Stopped.DISCONNECTED
                if account is None
                else SyncSchedule.Stopped.REAUTH
            )
            sync_stop(user_id=user.pk, reason=reason)
            schedule.refresh_from_db()
            return schedule, False
        # Race: the beat and a "Sync now" (or two beats) at once; one of them takes the run.
        taken = SyncSchedule.objects.filter(pk=schedule.pk, running_since__isnull=True).update(
            running_since=now
        )
        if not taken:
            schedule.refresh_from_db()
            return schedule, False
        scan = _start_scan(user=user, origin=origin)
        if scan is None:
            # The schedule's row was locked by the update above; the run ends at once.
            SyncSchedule.objects.filter(pk=schedule.pk).update(running_since=None)
            schedule.refresh_from_db()
            return schedule, False
        SyncSchedule.objects.filter(pk=schedule.pk).update(
            scan=scan, playlist_job=None, run_origin=origin
        )
        transaction.on_commit(lambda: sync_enqueue(user_id=user.pk))
    schedule.refresh_from_db()
    return schedule, True


def _start_scan(*, user: AbstractBaseUser, origin: str) -> Scan | None:
    last = Scan.objects.filter(user_id=user.pk, status=Scan.Status.SUCCEEDED).first()
    sources = list(last.sources) if last and last.sources else list(DEFAULT_SOURCES)
    try:
        scan, created = scan_start(user=user, sources=sources, refresh=True)
    except ScanInputError:
        logger.warning("sync for user %s: could not start a scan", user.pk)
        return None
    if created:
        # Still inside the transaction: the scan's task is queued only after commit, so the
        # worker that takes it already sees the origin it runs at.
        Scan.objects.filter(pk=scan.pk).update(origin=origin)
    return scan


def sync_enqueue(*, user_id: int) -> None:
    """Hand a run's driver to a worker (a refused broker leaves the run to the beat's tick)."""
    job_enqueue(task_name=SYNC_RUN_TASK, job_id=str(user_id), label="sync run")


def sync_finish(
    *,
    user_id: int,
    result: SyncResult,
    baseline: dict[str, Any] | None = None,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> bool:
    """End the listener's run with its result; the next run is one jittered interval away.

    A failed run counts towards ``failures`` (the admin's sync health); a good one resets it.
    False if no run was in progress (another driver ended it first).
    """
    now = now or timezone.now()
    with transaction.atomic():
        schedule = (
            SyncSchedule.objects.select_for_update()
            .filter(user_id=user_id, running_since__isnull=False)
            .first()
        )
        if schedule is None:
            return False
        schedule.running_since = None
        schedule.scan = None
        schedule.playlist_job = None
        schedule.last_run_at = now
        schedule.last_result = dict(result)
        schedule.failures = 0 if result["status"] == "succeeded" else schedule.failures + 1
        if baseline is not None:
            schedule.baseline = baseline
        if schedule.enabled:
            schedule.next_run_at = sync_next_run_at(
                interval_hours=schedule.interval_hours, now=now, rng=rng
            )
        schedule.save()
    return True


def failed_result(message: str) -> SyncResult:
    return SyncResult(
        status="failed",
        tracksAdded=0,
        tracksRemoved=0,
        playlistsUpdated=0,
        error=message,
        playlists=[],
    )


def stopped_filter() -> Q:
    """Schedules auto-sync turned off by itself (the admin's "stopped")."""
    return ~Q(stopped_reason=SyncSchedule.Stopped.NONE)
