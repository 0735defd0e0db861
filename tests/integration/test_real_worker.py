"""A real Celery worker on the configured broker (Redis in CI, files on a laptop) runs a
scan; killed mid-scan, the job is recovered by another worker and finishes exactly once.

Eager mode would hide what matters here: serialisation, acks_late, a process dying with a
claimed job row, and recovery re-queueing through the real broker.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from genres.models import LibraryTrack, Scan
from genres.scans import scan_start
from genres.tasks import jobs_recover
from sandbox.testing import RunningSandbox
from tests.integration.conftest import JOB_TIMEOUT, LISTENER, signed_in_listener, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def scan_matches_truth(scan: Scan, sandbox: RunningSandbox) -> None:
    truth = sandbox.truth(LISTENER["id"])
    payload = scan.result.payload
    found = {genre["name"]: sorted(genre["trackIds"]) for genre in payload["genres"]}
    assert found == truth["genres"]
    assert payload["totalTracks"] == truth["totalTracks"]


def test_a_real_worker_runs_a_scan_sent_through_the_broker(
    sandbox: RunningSandbox, start_worker: Callable[[], Any]
) -> None:
    user = signed_in_listener(sandbox)
    start_worker()
    scan, created = scan_start(user=user, sources=["liked"], refresh=True)
    assert created
    wait_for(
        lambda: Scan.objects.get(pk=scan.pk).status == Scan.Status.SUCCEEDED,
        JOB_TIMEOUT,
        "the scan to succeed",
    )
    scan_matches_truth(Scan.objects.get(pk=scan.pk), sandbox)


def test_a_scan_whose_worker_is_killed_is_finished_by_another_worker_exactly_once(
    sandbox: RunningSandbox, start_worker: Callable[[], Any]
) -> None:
    user = signed_in_listener(sandbox)
    first = start_worker()
    scan, _ = scan_start(user=user, sources=["liked"], refresh=True)
    wait_for(
        lambda: Scan.objects.get(pk=scan.pk).artists_fetched >= 50,
        JOB_TIMEOUT,
        "the first worker to be fetching artists",
    )
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    killed = Scan.objects.get(pk=scan.pk)
    assert killed.status == Scan.Status.RUNNING
    assert killed.step == Scan.Step.FETCHING_ARTISTS

    # Two minutes pass without a heartbeat; the periodic recovery hands the scan on.
    Scan.objects.filter(pk=scan.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=10))
    start_worker()
    assert jobs_recover()["scans"] == 1
    wait_for(
        lambda: Scan.objects.get(pk=scan.pk).status == Scan.Status.SUCCEEDED,
        JOB_TIMEOUT,
        "the recovered scan to succeed",
    )
    finished = Scan.objects.get(pk=scan.pk)
    scan_matches_truth(finished, sandbox)
    assert finished.attempts == 2
    tracks = LibraryTrack.objects.filter(user=user, source="liked")
    assert tracks.count() == tracks.values("track_id").distinct().count()
    assert tracks.count() == sandbox.truth(LISTENER["id"])["totalTracks"]
