"""Scans: starting one, its transitions (claim, pause, fail), recovery and pruning.

A scan is a row (``Scan``) that is the truth about its progress; the runner
(genres.scan_runner) does the work. Every transition is a compare-and-set on that row
(genres.jobs): a worker owns a running scan through ``claimed_by`` and proves it is alive
with ``heartbeat_at``, and every progress write checks both, so a worker that lost its claim
(it stalled and another took over) stops at its next write instead of racing.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import NotRequired, TypedDict

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from genres.heartbeat import Heartbeat
from genres.jobs import (
    is_uuid,
    job_enqueue,
    job_heartbeat,
    yield_claim,
    yield_token_new,
)
from genres.models import PlaylistJob, Scan, ScanResult, SpotifyAccount

# The Celery task that runs a scan (genres.tasks), queued by name.
SCAN_RUN_TASK = "genres.tasks.scan_run"
# A successful scan younger than this answers POST /api/scans {"refresh": false}.
FRESH_SCAN_AGE = timedelta(hours=6)
MAX_SOURCES = 20
# Results kept per listener (a large library's result is about half a megabyte); older ones
# go unless a playlist job still works from them. The scan rows themselves stay.
KEEP_RESULTS = 3
# A pause up to this long is ended by a message with a countdown, at resumeAt; a longer one (a
# quota of hours) by the periodic recovery, which is also the safety net for the short ones.
# (A worker holds a delayed message unacknowledged: this stays well under RabbitMQ's default
# 30-minute consumer timeout and the Redis broker's visibility timeout.)
PROMPT_RESUME_MAX = timedelta(minutes=15)
# A delayed message is sent this much after the row is due, so it never arrives just before.
DUE_MARGIN_SECONDS = 0.5


class ScanError(TypedDict):
    """A failed or paused scan's ``error`` (the contract's shape)."""

    error: str
    details: str
    step: str
    tracksFound: int
    artistsToFetch: int
    resumeAt: NotRequired[str | None]  # paused: when the scan goes on
    stepLabel: NotRequired[str]  # added to the JSON, never stored (genres.selectors)


# --- Starting ---------------------------------------------------------------------------------


class ScanInputError(ValueError):
    """The client sent sources the scan cannot use; the message says what is wrong."""


def normalize_sources(sources: object) -> list[str]:
    """Validated, de-duplicated sources; raises ScanInputError."""
    if sources is None:
        return ["liked"]
    if not isinstance(sources, list):
        raise ScanInputError('"sources" must be a list such as ["liked"]')
    if not sources:
        raise ScanInputError('"sources" must name at least one source')
    if len(sources) > MAX_SOURCES:
        raise ScanInputError(f'"sources" may name at most {MAX_SOURCES} sources')
    cleaned: list[str] = []
    for source in sources:
        if not isinstance(source, str):
            raise ScanInputError('every source must be a string: "liked" or "playlist:<id>"')
        if source != "liked":
            kind, _, playlist_id = source.partition(":")
            if kind != "playlist" or not spotify_id_valid(playlist_id):
                raise ScanInputError(
                    'every source must be "liked" or "playlist:<Spotify playlist id>"'
                )
        if source not in cleaned:
            cleaned.append(source)
    return cleaned


def spotify_id_valid(value: str) -> bool:
    """A Spotify id: base62, 22 characters for catalog ids (a little leeway for others)."""
    return 1 <= len(value) <= 64 and value.isascii() and value.isalnum()


def _enqueue_scan(
    scan_id: uuid.UUID | str, *, token: str = "", countdown: float | None = None
) -> None:
    # A broker that refuses leaves the row as it is: jobs_recover re-queues it.
    job_enqueue(
        task_name=SCAN_RUN_TASK, job_id=scan_id, label="scan", token=token, countdown=countdown
    )


def scan_start(
    *, user: AbstractBaseUser, sources: list[str] | None = None, refresh: bool = False
) -> tuple[Scan, bool]:
    """Start a scan for a listener, or answer with the one that stands for it.

    Returns ``(scan, created)``. Not created: the listener's active (queued, running, paused)
    scan, or with ``refresh=False`` the latest successful scan of the same sources if it is
    younger than FRESH_SCAN_AGE (its status is then ``succeeded``: "reused").
    """
    sources = normalize_sources(sources)
    with transaction.atomic():
        # Race: two POSTs at once both see no active scan and both create one; locking the
        # listener's account row serializes them (and a partial unique index backs it up).
        account = SpotifyAccount.objects.select_for_update().filter(user_id=user.pk).first()
        if account is None:
            raise ScanInputError("Only a listener signed in with Spotify can scan")
        active = Scan.objects.filter(user_id=user.pk, status__in=Scan.ACTIVE).first()
        if active is not None:
            return active, False
        if not refresh:
            fresh = (
                Scan.objects.filter(
                    user_id=user.pk,
                    status=Scan.Status.SUCCEEDED,
                    finished_at__gte=timezone.now() - FRESH_SCAN_AGE,
                    result__isnull=False,
                )
                .order_by("-finished_at")
                .first()
            )
            if fresh is not None and sorted(fresh.sources) == sorted(sources):
                return fresh, False
        try:
            with transaction.atomic():
                scan = Scan.objects.create(user_id=user.pk, sources=sources, refresh=refresh)
        except IntegrityError:
            # The partial unique index caught a start that bypassed the lock: answer with
            # the scan that won.
            return Scan.objects.get(user_id=user.pk, status__in=Scan.ACTIVE), False
        transaction.on_commit(lambda: _enqueue_scan(scan.id))
    return scan, True


# --- Transitions ------------------------------------------------------------------------------


def scan_claim(
    *, scan_id: object, worker: str, now: datetime | None = None, token: str = ""
) -> Scan | None:
    """Take a scan for ``worker``: queued, paused and due, running with a stale heartbeat, or
    (with its ``token``) yielded and due.

    Returns the claimed scan, or None when it is not claimable (finished, held by a live
    worker, paused until later, yielded under another token, unknown).
    """
    now = now or timezone.now()
    # Race: a redelivered task, jobs_recover and a retry may all try one scan; the
    # conditional update lets exactly one of them win.
    claimed = (
        Scan.objects.claimable(now=now, token=token)
        .filter(pk=scan_id)
        .update(
            status=Scan.Status.RUNNING,
            claimed_by=worker,
            heartbeat_at=now,
            resume_at=None,
            error=None,
            # Taking back a yielded scan is its next slice, not another attempt.
            attempts=F("attempts") + (0 if token else 1),
            started_at=Coalesce(F("started_at"), Value(now)),
        )
        if is_uuid(scan_id)
        else 0
    )
    return Scan.objects.get(pk=scan_id) if claimed else None


def scan_pause(
    *, scan_id: uuid.UUID | str, worker: str, resume_at: datetime, error: ScanError
) -> bool:
    """Running -> paused until ``resume_at`` (Spotify's rate limit or quota); the checkpoint
    stays. A pause up to PROMPT_RESUME_MAX is resumed at ``resume_at`` by a delayed message,
    without waiting for the periodic recovery (which also resumes it if that message is lost).
    """
    now = timezone.now()
    # Race: only the worker that holds the claim may park the scan.
    paused = Scan.objects.owned_by(pk=scan_id, worker=worker).update(
        status=Scan.Status.PAUSED,
        resume_at=resume_at,
        error=error,
        claimed_by="",
        heartbeat_at=now,
    )
    if paused and resume_at - now <= PROMPT_RESUME_MAX:
        countdown = max(0.0, (resume_at - now).total_seconds()) + DUE_MARGIN_SECONDS
        transaction.on_commit(lambda: _enqueue_scan(scan_id, countdown=countdown))
    return bool(paused)


def scan_yield(*, scan_id: uuid.UUID | str, worker: str, delay: float = 0.0) -> bool:
    """Hand a running scan's worker back (genres.jobs): the scan stays ``running`` for the
    listener, no worker holds it, and its task is queued again, at the back of the queue,
    with a new token (after ``delay`` seconds when it waits for the Spotify budget)."""
    token = yield_token_new()
    due = timezone.now() + timedelta(seconds=max(0.0, delay))
    # Race: only the worker that holds the claim may hand it back.
    handed_back = Scan.objects.owned_by(pk=scan_id, worker=worker).update(
        claimed_by=yield_claim(token), heartbeat_at=due
    )
    if handed_back:
        countdown = delay + DUE_MARGIN_SECONDS if delay > 0 else None
        transaction.on_commit(lambda: _enqueue_scan(scan_id, token=token, countdown=countdown))
    return bool(handed_back)


def scan_fail(*, scan_id: uuid.UUID | str, worker: str | None, error: ScanError) -> bool:
    """Running -> failed with the contract's error shape; the previous result stays the latest."""
    rows = (
        Scan.objects.owned_by(pk=scan_id, worker=worker)
        if worker is not None
        else Scan.objects.filter(pk=scan_id, status__in=Scan.ACTIVE)
    )
    # Race: a worker that lost its claim must not fail a scan another worker is finishing.
    return bool(
        rows.update(
            status=Scan.Status.FAILED,
            error=error,
            finished_at=timezone.now(),
            claimed_by="",
            resume_at=None,
        )
    )


def scans_due_for_recovery(*, now: datetime | None = None) -> list[str]:
    """Scans a worker should (re)run now: paused and due, running with a dead worker, or
    queued so long ago that their task message must have been lost."""
    due = Scan.objects.due_for_recovery(now=now)
    return [str(pk) for pk in due.values_list("pk", flat=True)]


def scan_results_prune(*, user_id: int) -> int:
    """Delete all but the listener's KEEP_RESULTS newest results (never one an unfinished
    playlist job uses); returns how many went."""
    keep = list(
        ScanResult.objects.filter(user_id=user_id)
        .order_by("-created_at")
        .values_list("pk", flat=True)[:KEEP_RESULTS]
    )
    in_use = PlaylistJob.objects.filter(
        user_id=user_id, status__in=(PlaylistJob.Status.QUEUED, PlaylistJob.Status.RUNNING)
    ).values_list("scan_id", flat=True)
    old = ScanResult.objects.filter(user_id=user_id).exclude(pk__in=keep)
    deleted, _ = old.exclude(scan_id__in=in_use).delete()
    return deleted


def scan_heartbeat(*, scan_id: uuid.UUID | str, worker: str) -> Heartbeat:
    # Race: beats only while the claim is ours; a lost claim stops the run at its next
    # progress write.
    return job_heartbeat(
        claimed=Scan.objects.owned_by(pk=scan_id, worker=worker), label=f"scan {scan_id}"
    )
