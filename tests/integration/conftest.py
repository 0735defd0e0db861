"""Fixtures of the whole-stack tests: the sandbox over HTTP, real Celery workers in their own
processes sharing the test database, and a signed-in listener."""

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
from django.db import connection
from django.utils import timezone

from genres.accounts import account_link
from genres.spotify import TokenSet
from sandbox.testing import RunningSandbox, running_sandbox

REPO = Path(__file__).resolve().parents[2]
LISTENER = {"id": "worker-test", "tracks": 900, "artists": 400, "artist_offset": 20_000}
WORKER_START_TIMEOUT = 30.0
JOB_TIMEOUT = 120.0


def database_url() -> str:
    """The URL of the test database (pytest-django has already switched to it)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    # Latency makes a scan long enough to kill a worker in the middle of it.
    with running_sandbox(users=[LISTENER], latency_ms=15) as running:
        yield running


@pytest.fixture
def spotify_at_sandbox(settings: Any, sandbox: RunningSandbox) -> RunningSandbox:
    settings.SPOTIFY_ACCOUNTS_URL = sandbox.accounts_url
    settings.SPOTIFY_API_URL = sandbox.api_url
    settings.SPOTIFY_RATE_LIMIT = 1_000_000
    return sandbox


@pytest.fixture
def start_worker(sandbox: RunningSandbox, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """Starts `celery -A swedify worker` processes on the configured broker."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        # The development secret (shared with this test process, which encrypted the tokens)
        # is refused by a worker unless DEBUG is on.
        "DEBUG": "true",
        "SWEDIFY_SANDBOX_URL": sandbox.url,
        "SPOTIFY_RATE_LIMIT": "1000000",
        "SWEDIFY_DATA_DIR": str(settings.DATA_DIR),
    }
    for name in ("SPOTIFY_CLIENT_ID", "SPOTIFY_ACCOUNTS_URL", "SPOTIFY_API_URL", "SECRET_KEY"):
        env.pop(name, None)
    workers: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        log_path = tmp_path / f"worker-{len(workers)}.log"
        with open(log_path, "w") as log:
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
            if "ready." in log_path.read_text():
                return worker
            assert worker.poll() is None, log_path.read_text()
            time.sleep(0.2)
        raise AssertionError(f"the Celery worker did not become ready:\n{log_path.read_text()}")

    yield start
    for worker in workers:
        if worker.poll() is None:
            worker.kill()
        worker.wait(timeout=10)


def signed_in_listener(sandbox: RunningSandbox) -> Any:
    """A listener linked with tokens the sandbox issued (sign-in itself is tested elsewhere)."""
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


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
