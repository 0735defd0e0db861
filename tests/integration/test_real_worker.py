"""A real Celery worker on the configured broker (Redis in CI, files on a laptop) runs a
scan; killed mid-scan, the job is recovered by another worker and finishes exactly once.

Eager mode would hide what matters here: serialisation, acks_late, a process dying with a
claimed job row, and recovery re-queueing through the real broker.
"""

from __future__ import annotations

import os
import signal
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
from django.db import connection
from django.utils import timezone

from genres.models import LibraryTrack, Scan
from genres.services import account_link, scan_start
from genres.spotify import TokenSet
from genres.tasks import jobs_recover
from sandbox.testing import RunningSandbox, running_sandbox

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[2]
LISTENER = {"id": "worker-test", "tracks": 900, "artists": 400, "artist_offset": 20_000}
WORKER_START_TIMEOUT = 30.0
SCAN_TIMEOUT = 120.0


def database_url() -> str:
    """The URL of the test database (pytest-django has already switched to it)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    # Latency makes the scan long enough to kill a worker in the middle of it.
    with running_sandbox(users=[LISTENER], latency_ms=15) as running:
        yield running


@pytest.fixture
def start_worker(sandbox: RunningSandbox, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DEBUG": "true",
        "SWEDIFY_SANDBOX_URL": sandbox.url,
        "SPOTIFY_RATE_LIMIT": "1000000",
        "SWEDIFY_DATA_DIR": str(settings.DATA_DIR),
    }
    env.pop("SPOTIFY_CLIENT_ID", None)
    workers: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        log = open(tmp_path / f"worker-{len(workers)}.log", "w")  # noqa: SIM115
        worker = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "swedify", "worker",
                "--pool", "solo", "--without-mingle", "--without-gossip",
                "--loglevel", "INFO",
            ],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        workers.append(worker)
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while time.monotonic() < deadline:
            if "ready." in (tmp_path / f"worker-{len(workers) - 1}.log").read_text():
                return worker
            assert worker.poll() is None, (tmp_path / f"worker-{len(workers) - 1}.log").read_text()
            time.sleep(0.2)
        raise AssertionError("the Celery worker did not become ready")

    yield start
    for worker in workers:
        if worker.poll() is None:
            worker.kill()
        worker.wait(timeout=10)


def signed_in_listener(sandbox: RunningSandbox) -> Any:
    token = sandbox.issue_token(LISTENER["id"])
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


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


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
        SCAN_TIMEOUT,
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
        SCAN_TIMEOUT,
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
        SCAN_TIMEOUT,
        "the recovered scan to succeed",
    )
    finished = Scan.objects.get(pk=scan.pk)
    scan_matches_truth(finished, sandbox)
    assert finished.attempts == 2
    tracks = LibraryTrack.objects.filter(user=user, source="liked")
    assert tracks.count() == tracks.values("track_id").distinct().count()
    assert tracks.count() == sandbox.truth(LISTENER["id"])["totalTracks"]
