"""Celery tasks of the listener side. Each is idempotent: the work is claimed on its job row
with compare-and-set (genres.jobs), so a duplicate delivery, a retry or a recovery re-queue is
harmless.

Services queue these by name (``SCAN_RUN_TASK``, ``PLAYLIST_JOB_RUN_TASK``) and never import
this module; the names are those running deployments have already queued.
"""

from __future__ import annotations

import logging

from celery import Task, shared_task

from genres import playlist_runner, playlists, scan_runner
from genres.jobs import RUN_BUSY
from genres.playlists import BUSY_RETRY_SECONDS, PLAYLIST_JOB_RUN_TASK
from genres.scans import SCAN_RUN_TASK, scans_due_for_recovery

logger = logging.getLogger(__name__)

# A playlist job waiting for another job of its listener retries this often; after that
# (about two minutes) recovery re-queues it while it stays queued.
PLAYLIST_BUSY_RETRIES = 8


@shared_task(name=SCAN_RUN_TASK, acks_late=True, ignore_result=True)
def scan_run(scan_id: str, token: str = "") -> str:
    """Run or resume one slice of a scan (see scan_runner.scan_run); ``token`` takes back a
    scan that yielded its worker (genres.jobs). A yield queues the next slice itself."""
    return scan_runner.scan_run(scan_id=scan_id, token=token)


@shared_task(name="genres.tasks.jobs_recover", ignore_result=True)
def jobs_recover() -> dict[str, int]:
    """Every 30 s (CELERY_BEAT_SCHEDULE): re-queue paused scans whose resumeAt has passed,
    jobs whose worker stopped heartbeating (a yielded job whose message was lost looks so two
    minutes after it was due), and queued jobs whose message was lost. The safety net only:
    short pauses and yields come back by delayed messages of their own, with or without beat."""
    scans = scans_due_for_recovery()
    for scan_id in scans:
        try:
            scan_run.delay(scan_id)
        except Exception:  # the next round tries again
            logger.exception("could not re-queue scan %s", scan_id)
    playlist_jobs = playlists.playlist_jobs_due_for_recovery()
    for job_id in playlist_jobs:
        try:
            playlist_job_run_task.delay(job_id)
        except Exception:  # the next round tries again
            logger.exception("could not re-queue playlist job %s", job_id)
    return {"scans": len(scans), "playlistJobs": len(playlist_jobs)}


@shared_task(
    name=PLAYLIST_JOB_RUN_TASK,
    bind=True,
    acks_late=True,
    ignore_result=True,
    max_retries=PLAYLIST_BUSY_RETRIES,
)
def playlist_job_run_task(self: Task, job_id: str, token: str = "") -> str:
    """Run or resume one playlist job (see playlist_runner.playlist_job_run); ``token`` takes
    back a job that yielded its worker. While another job of the same listener runs it waits,
    queued, and tries again (recovery re-queues it too)."""
    outcome = playlist_runner.playlist_job_run(job_id=job_id, token=token)
    if outcome == RUN_BUSY and self.request.retries < PLAYLIST_BUSY_RETRIES:
        raise self.retry(countdown=BUSY_RETRY_SECONDS)
    return outcome
