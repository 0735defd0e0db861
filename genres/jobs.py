"""What scans and playlist jobs share: a row a worker claims, keeps alive and gives back.

A job row is the truth about its progress. A worker takes it with a compare-and-set on
``status`` (queued, or running with a stale heartbeat: its worker died), writes its id to
``claimed_by`` and proves it is alive with ``heartbeat_at``; every later write checks the
claim, so a worker that lost it (it stalled and another took over) stops at its next write
(``JobClaimLost``) instead of racing. Periodic recovery re-queues what no live worker holds.

Fair use of worker processes: a job runs in bounded *slices*. When its slice is used up and
other work waits for a worker (``JobSlice``), it stops sending new Spotify requests, lets the
ones in flight finish and stores them, checkpoints, and *yields*: its row stays ``running``
(the listener sees it go on) but no worker holds it (``claimed_by`` is ``yield:<token>``), and
its task is queued again at the back of the queue with that token. Only the message carrying
the row's current token may take the row back, so a duplicate delivery of an older message
does nothing, and messages never multiply. A job that must wait for the shared Spotify budget
yields the same way with a countdown instead of holding a worker while it waits. A yielded
row's ``heartbeat_at`` is when it is due again (now, or the end of that wait), so if its
message is lost, recovery finds it stale two minutes later and re-queues it.

Among jobs of one priority the one that has had least service goes first (least attained
service): a scan yields only to waiting work that has made fewer Spotify requests than it has
(a new job has made none), so a small scan that got a worker keeps it until it is done while
big ones take turns, and a big one never starves (its turn comes once the others caught up).
Interactive work (origin ``listener``) goes before background work (origin ``sync``): a
background job yields as soon as interactive work waits, and an interactive job never yields
to background work. Which jobs wait is read from the job rows, so it holds whatever the broker
and however many worker processes there are.

Tasks are queued by name (``job_enqueue``), so a service never imports the task module that
imports it.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Self

from celery import current_app
from django.apps import apps
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from genres.heartbeat import Heartbeat

logger = logging.getLogger(__name__)

# A running job whose worker has not written for this long is presumed dead: another worker
# may take it over (and another playlist job of the same listener may start).
HEARTBEAT_STALE = timedelta(minutes=2)
# A thread beats this often while a job runs: one Spotify call can block for minutes (the
# shared limiter, short 429s waited out), and a live worker must never look dead.
HEARTBEAT_EVERY = timedelta(seconds=30)
# A queued job nobody claimed for this long lost its task message; recovery re-queues it.
QUEUED_STALE = timedelta(minutes=2)

# What a run did when it did not run the job to an end of its own (a scan's run otherwise
# answers with the scan's status).
RUN_FINISHED = "finished"
RUN_BUSY = "busy"  # another job of the listener is running: try again later
RUN_NOT_CLAIMED = "not_claimed"  # finished, unknown, or held by a live worker
RUN_YIELDED = "yielded"  # the job handed its worker back and is queued again

QUEUED = "queued"
RUNNING = "running"
# Origins of a job (genres.models.JobOrigin): sync work runs at background priority.
ORIGIN_LISTENER = "listener"
ORIGIN_SYNC = "sync"

# The claim of a yielded row: no worker holds it; the message with this token takes it back.
YIELD_PREFIX = "yield:"
# An interactive job runs at least SWEDIFY_JOB_SLICE_SECONDS (default 5) before it yields to
# other waiting work, so a yield (a re-claim, the requests in flight drained) costs a few
# percent of a slice at most.
# The shortest slice whatever the setting: a slice must get its first requests out.
MIN_SLICE_SECONDS = 0.2
# A job yields before its slice is used up (after this long) when waiting work has made less
# than 1/EARLY_SHARE of its requests: a new or small job then waits about a second, not a
# slice. (Once running, that job has far fewer requests, so the two never take turns fast.)
EARLY_YIELD_AFTER = 1.0
EARLY_SHARE = 2
# Whether other work waits is read from the database at most this often while a job runs.
WAITING_CHECK_EVERY = 1.0
# A background job yielding to interactive work comes back after this (not at once: the
# interactive work may not be runnable yet, and a free worker must not spin on it).
BACKGROUND_YIELD_DELAY = 2.0
# A job waits for the shared Spotify budget at most this long inside a worker; a longer
# wait yields the worker (the client's limiter_timeout).
JOB_LIMITER_TIMEOUT = 8.0
# A job that yielded for the budget looks again after at most this long, whatever the limiter
# expected: the expectation is a guess under fair sharing (other listeners finish, the learned
# budget grows), and a look too early costs one claim (the limiter answers at once while the
# wait is still long), while sleeping through a pessimistic guess costs the listener.
BUDGET_RECHECK_MAX = 8.0


class JobClaimLost(Exception):
    """This worker no longer owns the job (another worker took it over); stop quietly."""


class SliceEnd(Exception):
    """The job's slice is over: it sends no new Spotify request and yields its worker."""


def yield_claim(token: str) -> str:
    """The ``claimed_by`` of a row yielded with ``token``."""
    return f"{YIELD_PREFIX}{token}"


def yield_token_new() -> str:
    return secrets.token_hex(8)


def default_worker_id() -> str:
    """This process's claim token: host, pid and a random part (a restarted pid differs)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


class JobQuerySet(models.QuerySet):
    """The claim states of job rows, one spelling for every kind of job."""

    def _dead(self, now: datetime) -> Q:
        return Q(status=RUNNING) & (
            Q(heartbeat_at__lt=now - HEARTBEAT_STALE) | Q(heartbeat_at__isnull=True)
        )

    def claimable(self, *, now: datetime | None = None, token: str = "") -> Self:
        """Rows a worker may take now: queued, running with a dead worker, or parked and due
        (the model's ``due_to_resume``); with ``token``, also the row yielded with it once
        it is due (a message without the current token never takes a yielded row early)."""
        now = now or timezone.now()
        mine = Q(status=QUEUED) | self._dead(now) | self.model.due_to_resume(now)
        if token:
            mine |= Q(status=RUNNING, claimed_by=yield_claim(token), heartbeat_at__lte=now)
        return self.filter(mine)

    def due_for_recovery(self, *, now: datetime | None = None) -> Self:
        """Rows recovery re-queues: running with a dead worker, parked and due, or queued so
        long ago that their task message must have been lost. A queued row of a listener
        whose other job runs with a live worker is only waiting for it (its task retries by
        itself): re-queueing it would only add duplicate messages."""
        now = now or timezone.now()
        busy_users = self.model._default_manager.alive(now=now).values("user_id")
        lost = Q(status=QUEUED, created_at__lt=now - QUEUED_STALE) & ~Q(user_id__in=busy_users)
        return self.filter(lost | self._dead(now) | self.model.due_to_resume(now))

    def alive(self, *, now: datetime | None = None) -> Self:
        """Running rows whose worker beat recently."""
        now = now or timezone.now()
        return self.filter(status=RUNNING, heartbeat_at__gte=now - HEARTBEAT_STALE)

    def waiting(self, *, now: datetime | None = None) -> Self:
        """Rows that wait for a worker now: queued, yielded and due, or parked and due (their
        delayed message is there, but a worker must be free to run it)."""
        now = now or timezone.now()
        yielded = Q(status=RUNNING, claimed_by__startswith=YIELD_PREFIX, heartbeat_at__lte=now)
        return self.filter(Q(status=QUEUED) | yielded | self.model.due_to_resume(now))

    def owned_by(self, *, pk: uuid.UUID | str, worker: str) -> Self:
        """The row while ``worker`` holds its claim (empty once another worker took it)."""
        return self.filter(pk=pk, status=RUNNING, claimed_by=worker)


class ClaimedJob(models.Model):
    """A job row: the claim fields and their QuerySet. Subclasses add ``status`` (with
    ``queued`` and ``running`` among its values) and what the job itself needs."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Which worker holds the job, and its last sign of life; a stale heartbeat lets another
    # worker take over after a crash.
    claimed_by = models.CharField(max_length=128, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    objects = JobQuerySet.as_manager()

    class Meta:
        abstract = True

    @classmethod
    def due_to_resume(cls, now: datetime) -> Q:
        """Parked rows that may run again now; none unless a kind of job parks."""
        return Q()


def job_heartbeat(*, claimed: models.QuerySet, label: str) -> Heartbeat:
    """The heartbeat of a claimed job; beats only while ``claimed`` selects the row."""
    return Heartbeat(claimed=claimed, every=HEARTBEAT_EVERY, label=label)


def job_enqueue(
    *,
    task_name: str,
    job_id: uuid.UUID | str,
    label: str,
    token: str = "",
    countdown: float | None = None,
) -> None:
    """Hand a job to a worker by its Celery task name; ``token`` takes back a yielded row,
    ``countdown`` delays the message (a worker holds it meanwhile, a timer, not a process).
    A broker that refuses it leaves the row as it is: recovery re-queues it."""
    app = current_app
    # A plain first message stays exactly what running deployments already send and read.
    options: dict[str, Any] = {}
    if token:
        options["kwargs"] = {"token": token}
    if countdown is not None:
        options["countdown"] = countdown
    try:
        task = app.tasks.get(task_name)
        if task is not None and not options:
            task.delay(str(job_id))
        elif task is not None:
            task.apply_async(args=[str(job_id)], **options)
        else:
            # This process never imported the task module: the message is the same.
            app.send_task(task_name, args=[str(job_id)], **options)
    except Exception:
        logger.exception("could not queue %s %s; recovery will retry", label, job_id)


def waiting_work(
    *,
    user_id: int,
    background: bool,
    service: int | None = None,
    now: datetime | None = None,
) -> bool:
    """Whether work of other listeners waits for a worker that this job should yield to: any
    interactive work, and for background work also other background work; with ``service``
    (the Spotify requests this job has made), only scans that have made fewer (least attained
    service first; playlist jobs keep no count and always count). A listener's own jobs do
    not compete, and a queued playlist job whose listener has one running does not wait for
    a worker but for that job."""
    # By name: genres.models imports this module.
    for name in ("Scan", "PlaylistJob"):
        model = apps.get_model("genres", name)
        rows = model.objects.waiting(now=now).exclude(user_id=user_id)
        if not background:
            rows = rows.filter(origin=ORIGIN_LISTENER)
        if service is not None and name == "Scan":
            rows = rows.filter(requests_made__lt=service)
        if name == "PlaylistJob":
            busy = model.objects.alive(now=now).values("user_id")
            rows = rows.exclude(Q(status=QUEUED) & Q(user_id__in=busy))
        if rows.exists():
            return True
    return False


class JobSlice:
    """When a running job should yield its worker (module docstring).

    ``over()`` is cheap to call often: it looks at the job rows at most every
    WAITING_CHECK_EVERY seconds. An interactive job yields once it has run its slice and
    interactive work of another listener with less service waits, or after EARLY_YIELD_AFTER
    when that work has had much less; a background job yields at once when interactive work
    waits, and after its slice when other background work with less service waits.
    ``seconds`` defaults to the SWEDIFY_JOB_SLICE_SECONDS setting; ``service`` says how many
    Spotify requests the job has made so far (None: no count).
    """

    def __init__(
        self,
        *,
        user_id: int,
        background: bool,
        seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        waiting: Callable[..., bool] | None = None,
        service: Callable[[], int] | None = None,
    ) -> None:
        self.user_id = user_id
        self.background = background
        if seconds is None:
            seconds = max(MIN_SLICE_SECONDS, float(settings.SWEDIFY_JOB_SLICE_SECONDS))
        self.seconds = seconds
        self._clock = clock
        self._waiting = waiting or waiting_work
        self._service = service
        self._started = clock()
        self._checked = -float("inf")
        self.ended = False
        # Set when a background job yields to interactive work: it comes back a little later.
        self.delay: float | None = None

    def over(self) -> bool:
        if self.ended:
            return True
        now = self._clock()
        if now - self._checked < WAITING_CHECK_EVERY:
            return False
        ran = now - self._started
        used_up = ran >= self.seconds
        service = self._service() if self._service else None
        # Before its slice is used up, a job with a count yields only to much smaller work.
        early = not used_up and service is not None and ran >= EARLY_YIELD_AFTER
        if not (used_up or early or self.background):
            return False
        self._checked = now
        if self.background and self._waiting(user_id=self.user_id, background=False):
            self.ended, self.delay = True, BACKGROUND_YIELD_DELAY
        elif used_up or early:
            # ``early`` implies a count; used up, any waiting work with less service will do.
            below = service // EARLY_SHARE if early and service is not None else service
            self.ended = self._waiting(
                user_id=self.user_id, background=self.background, service=below
            )
        return self.ended


class SliceGate:
    """The token provider a job's Spotify client uses: once the slice is over (``close``) it
    refuses to start new requests (``SliceEnd``), while requests already sent, or waiting for
    the rate limiter, finish, so nothing paid for is thrown away."""

    def __init__(self, tokens: object) -> None:
        self._tokens = tokens
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def access_token(self) -> str:
        if self.closed:
            raise SliceEnd("the job's slice is over")
        return self._tokens.access_token()  # type: ignore[attr-defined]

    def force_refresh(self) -> str:
        return self._tokens.force_refresh()  # type: ignore[attr-defined]
