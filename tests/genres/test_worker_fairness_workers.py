"""Fair sharing of worker processes, end to end: real Celery worker processes on the
configured broker, the sandbox over HTTP with latency so that big scans are slow. Two big
scans occupy both workers; a small scan started after them must not wait for them to finish:
the big ones yield their workers between slices, the small one runs, and it is done long
before they are. And a listener's scan goes before auto-sync work on the only worker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.utils import timezone

from genres.accounts import account_link
from genres.jobs import job_enqueue
from genres.models import Scan
from genres.scans import SCAN_RUN_TASK, scan_start
from genres.spotify import TokenSet
from sandbox.testing import RunningSandbox, running_sandbox
from tests.integration.conftest import database_url

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[2]
BIG = {"tracks": 300, "artists": 200, "followed_fraction": 0, "top_fraction": 0}
LISTENERS = [
    {"id": "fair-big-1", "artist_offset": 60_000, **BIG},
    {"id": "fair-big-2", "artist_offset": 70_000, **BIG},
    {"id": "fair-small", "tracks": 30, "artists": 15, "artist_offset": 80_000},
]
WORKER_START_TIMEOUT = 40.0
SCANS_TIMEOUT = 120.0
SLICE_SECONDS = 2


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    # Each request takes 80 ms and a worker sends two at a time: a big scan takes about ten
    # seconds, the small one (some twenty requests) about one.
    with running_sandbox(users=LISTENERS, latency_ms=80) as running:
        yield running


@pytest.fixture
def start_workers(sandbox: RunningSandbox, tmp_path: Path) -> Iterator[Callable[[int], None]]:
    """Starts `celery -A swedify worker` processes (one task at a time each)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        # The development secret (shared with this process, which encrypted the tokens) is
        # refused by a worker unless DEBUG is on.
        "DEBUG": "true",
        "SWEDIFY_SANDBOX_URL": sandbox.url,
        "SPOTIFY_RATE_LIMIT": "1000000",
        "SPOTIFY_CONCURRENCY": "2",
        "SWEDIFY_JOB_SLICE_SECONDS": str(SLICE_SECONDS),
        "SWEDIFY_DATA_DIR": str(settings.DATA_DIR),
    }
    for name in ("SPOTIFY_CLIENT_ID", "SPOTIFY_ACCOUNTS_URL", "SPOTIFY_API_URL", "SECRET_KEY"):
        env.pop(name, None)
    workers: list[subprocess.Popen] = []

    def start(count: int) -> None:
        logs = []
        for n in range(count):
            log_path = tmp_path / f"worker-{n}.log"
            command = [
                sys.executable, "-m", "celery", "-A", "swedify", "worker", "--pool", "solo",
                "--without-mingle", "--without-gossip", "--loglevel", "INFO",
                "--hostname", f"fair{n}@%h",
            ]  # fmt: skip
            with open(log_path, "w") as log:
                workers.append(
                    subprocess.Popen(
                        command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
                    )
                )
            logs.append(log_path)
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while not all("ready." in log.read_text() for log in logs):
            for worker, log in zip(workers, logs, strict=True):
                assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the workers did not become ready"
            time.sleep(0.2)

    yield start
    for worker in workers:
        if worker.poll() is None:
            worker.kill()
        worker.wait(timeout=10)


def linked(sandbox: RunningSandbox, spotify_id: str) -> Any:
    """A listener linked with tokens the sandbox issued (sign-in itself is tested elsewhere)."""
    token = sandbox.issue_token(spotify_id)
    profile = requests.get(
        f"{sandbox.api_url}/me",
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=5,
    ).json()
    tokens = TokenSet(
        access_token=token["access_token"],
        refresh_token=token.get("refresh_token"),
        expires_at=timezone.now() + timedelta(seconds=int(token.get("expires_in", 3600))),
        scope=token.get("scope", ""),
    )
    return account_link(profile=profile, tokens=tokens).user


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = SCANS_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_small_scan_started_while_two_big_ones_fill_both_workers_finishes_long_before_them(
    sandbox: RunningSandbox, start_workers: Callable[[int], None]
) -> None:
    big_users = [linked(sandbox, spec["id"]) for spec in LISTENERS[:2]]
    small_user = linked(sandbox, "fair-small")
    start_workers(2)

    bigs = [scan_start(user=user, refresh=True)[0] for user in big_users]
    wait_until(
        lambda: Scan.objects.filter(pk__in=[b.pk for b in bigs], tracks_found__gt=0).count() == 2,
        "both big scans to be at work",
    )
    small, _ = scan_start(user=small_user, refresh=True)
    wait_until(
        lambda: not Scan.objects.filter(status__in=Scan.ACTIVE).exists(), "every scan to end"
    )

    small = Scan.objects.get(pk=small.pk)
    bigs = list(Scan.objects.filter(pk__in=[b.pk for b in bigs]))
    assert [s.status for s in [small, *bigs]] == [Scan.Status.SUCCEEDED] * 3
    small_took = small.finished_at - small.created_at
    big_took = min(b.finished_at - b.created_at for b in bigs)
    # First come, first served would make the small scan wait for a big one to finish.
    assert small.finished_at < min(b.finished_at for b in bigs)
    assert small_took < big_took / 2, (small_took, big_took)
    assert small.result.total_tracks == sandbox.truth("fair-small")["totalTracks"]
    for big in bigs:
        truth = sandbox.truth(big.user.spotify_account.spotify_id)
        assert big.result.total_tracks == truth["totalTracks"]
        assert big.attempts == 1  # yields are slices, not retries


def test_a_listeners_scan_goes_before_a_running_auto_sync_scan_on_the_only_worker(
    sandbox: RunningSandbox, start_workers: Callable[[int], None]
) -> None:
    sync_user = linked(sandbox, "fair-big-1")
    small_user = linked(sandbox, "fair-small")
    start_workers(1)

    # Auto-sync work: background priority, queued as genres.sync queues it.
    background = Scan.objects.create(user=sync_user, sources=["liked"], origin="sync")
    job_enqueue(task_name=SCAN_RUN_TASK, job_id=background.pk, label="scan")
    wait_until(
        lambda: Scan.objects.filter(pk=background.pk, tracks_found__gt=0).exists(),
        "the auto-sync scan to be at work",
    )
    small, _ = scan_start(user=small_user, refresh=True)
    wait_until(
        lambda: not Scan.objects.filter(status__in=Scan.ACTIVE).exists(), "both scans to end"
    )

    small = Scan.objects.get(pk=small.pk)
    background = Scan.objects.get(pk=background.pk)
    assert small.status == background.status == Scan.Status.SUCCEEDED
    # The one worker was handed over at once and the listener's scan ran to its end first.
    assert small.finished_at < background.finished_at
    assert small.finished_at - small.created_at < (background.finished_at - small.created_at) / 2
