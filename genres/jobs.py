"""What scans and playlist jobs share: a row a worker claims, keeps alive and gives back.

A job row is the truth about its progress. A worker takes it with a compare-and-set on
``status`` (queued, or running with a stale heartbeat: its worker died), writes its id to
``claimed_by`` and proves it is alive with ``heartbeat_at``; every later write checks the
claim, so a worker that lost it (it stalled and another took over) stops at its next write
(``JobClaimLost``) instead of racing. Periodic recovery re-queues what no live worker holds.

Tasks are queued by name (``job_enqueue``), so a service never imports the task module that
imports it.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import datetime, timedelta
from typing import Self

from celery import current_app
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

QUEUED = "queued"
RUNNING = "running"


class JobClaimLost(Exception):
    """This worker no longer owns the job (another worker took it over); stop quietly."""


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

    def claimable(self, *, now: datetime | None = None) -> Self:
        """Rows a worker may take now: queued, running with a dead worker, or parked and due
        (the model's ``due_to_resume``)."""
        now = now or timezone.now()
        return self.filter(Q(status=QUEUED) | self._dead(now) | self.model.due_to_resume(now))

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


def job_enqueue(*, task_name: str, job_id: uuid.UUID | str, label: str) -> None:
    """Hand a job to a worker by its Celery task name. A broker that refuses it leaves the
    row queued: recovery re-queues it."""
    app = current_app
    try:
        task = app.tasks.get(task_name)
        if task is not None:
            task.delay(str(job_id))
        else:
            # This process never imported the task module: the message is the same.
            app.send_task(task_name, args=[str(job_id)])
    except Exception:
        logger.exception("could not queue %s %s; recovery will retry", label, job_id)
