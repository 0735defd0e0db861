"""Celery tasks of the listener side. Each is idempotent: the work is claimed on its job row
with compare-and-set, so a duplicate delivery, a retry or a recovery re-queue is harmless."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from genres import services

logger = logging.getLogger(__name__)

# A playlist job waiting for another job of its listener retries this often; after that
# (about two minutes) recovery re-queues it while it stays queued.
PLAYLIST_BUSY_RETRIES = 8


@shared_task(name="genres.tasks.scan_run", acks_late=True, ignore_result=True)
def scan_run(scan_id: str) -> str:
    """Run or resume one scan (see services.scan_run)."""
    return services.scan_run(scan_id=scan_id)


@shared_task(name="genres.tasks.jobs_recover", ignore_result=True)
def jobs_recover() -> dict[str, int]:
    """Every 30 s (CELERY_BEAT_SCHEDULE): re-queue paused scans whose resumeAt has passed,
    scans whose worker stopped heartbeating, and queued scans whose message was lost."""
    scans = services.scans_due_for_recovery()
    for scan_id in scans:
        try:
            scan_run.delay(scan_id)
        except Exception:  # the next round tries again
            logger.exception("could not re-queue scan %s", scan_id)
    recovered = {"scans": len(scans)}
    from genres.playlists import playlist_jobs_due_for_recovery

    playlist_jobs = playlist_jobs_due_for_recovery()
    for job_id in playlist_jobs:
        try:
            playlist_job_run_task.delay(job_id)
        except Exception:  # the next round tries again
            logger.exception("could not re-queue playlist job %s", job_id)
    recovered["playlistJobs"] = len(playlist_jobs)
    return recovered


# --- Playlist job task (H4: genres/playlists.py) goes below. ---


@shared_task(
    name="genres.tasks.playlist_job_run_task",
    bind=True,
    acks_late=True,
    ignore_result=True,
    max_retries=PLAYLIST_BUSY_RETRIES,
)
def playlist_job_run_task(self: Any, job_id: str) -> str:
    """Run or resume one playlist job (see playlists.playlist_job_run). While another job of
    the same listener runs it waits, queued, and tries again (recovery re-queues it too)."""
    from genres.playlists import BUSY_RETRY_SECONDS, RUN_BUSY, playlist_job_run

    outcome = playlist_job_run(job_id=job_id)
    if outcome == RUN_BUSY and self.request.retries < PLAYLIST_BUSY_RETRIES:
        raise self.retry(countdown=BUSY_RETRY_SECONDS)
    return outcome
