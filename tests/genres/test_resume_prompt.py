"""Prompt resumption with a real Celery worker (in this process, on an in-memory broker) and
the sandbox over HTTP, with no beat scheduler: a scan paused by a short Retry-After goes on at
its resumeAt (a delayed message, not the 30-second recovery), and a scan that waits for the
shared Spotify budget longer than its short limiter timeout hands its worker back and goes on
by itself, shown as running all along."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest
from django.utils import timezone

from genres import jobs, ratelimit, scans, spotify
from genres.models import Scan
from genres.ratelimit import LocalRateLimiter
from tests.genres.conftest import sign_in
from tests.genres.test_scan_sandbox import assert_matches_truth, start_scan
from tests.genres.test_scan_worker import worker_app  # noqa: F401 - the worker fixture

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.integration,
    pytest.mark.usefixtures("worker_app"),
]


@pytest.fixture(autouse=True)
def _fresh_limiter() -> None:
    """A fresh process-wide rate limiter: what an earlier test's 429s taught it (a lower
    budget, a hold) must not slow this test down or make its scan wait for the budget."""
    ratelimit._limiters.clear()


# Far from both the right behaviour (about half a second) and the wrong one (the next beat
# tick, which never comes here: no beat runs).
RESUME_SLACK_SECONDS = 5.0
TIMEOUT = 40.0


@pytest.fixture
def no_recovery(monkeypatch: Any) -> list[int]:
    """Counts periodic recovery rounds; none may happen (there is no beat)."""
    rounds: list[int] = []
    real = scans.scans_due_for_recovery

    def counted(**kwargs: Any) -> list[str]:
        rounds.append(1)
        return real(**kwargs)

    monkeypatch.setattr(scans, "scans_due_for_recovery", counted)
    return rounds


def watch(scan_id: str) -> list[tuple[float, str, str, datetime | None]]:
    """(wall time, status, claimed_by, resume_at) at each change, until the scan ends."""
    seen: list[tuple[float, str, str, datetime | None]] = []
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        status, claimed_by, resume_at = Scan.objects.values_list(
            "status", "claimed_by", "resume_at"
        ).get(pk=scan_id)
        if not seen or seen[-1][1:] != (status, claimed_by, resume_at):
            seen.append((time.time(), status, claimed_by, resume_at))
        if status not in Scan.ACTIVE:
            return seen
        time.sleep(0.02)
    raise AssertionError(f"the scan did not end in {TIMEOUT} s: {seen}")


def test_a_scan_paused_by_a_short_retry_after_resumes_at_its_resume_at_without_beat(
    client: Any, spotify_at_sandbox: Any, no_recovery: list[int], monkeypatch: Any
):
    sandbox = spotify_at_sandbox
    sign_in(client, sandbox, "small")
    # Spotify asks for 4 s: more than the client waits inline here, so the scan pauses. (A
    # limiter that does not learn: one scripted 429 is not a budget to adapt to.)
    monkeypatch.setattr(spotify, "MAX_INLINE_WAIT", 1.0)
    limiter = LocalRateLimiter(1_000_000, adaptive=False)
    monkeypatch.setattr(ratelimit, "rate_limiter", lambda: limiter)
    sandbox.set_faults(
        scripted=[{"status": 429, "retry_after": 4, "count": 1, "path": "/v1/me/tracks"}]
    )

    scan_id = start_scan(client).json()["id"]
    seen = watch(scan_id)

    statuses = [status for _, status, _, _ in seen]
    assert "paused" in statuses, seen
    paused = statuses.index("paused")
    resume_at = seen[paused][3]
    assert resume_at is not None
    resumed_at = seen[paused + 1][0]
    assert seen[paused + 1][1] in ("running", "succeeded")
    assert (
        resume_at.timestamp() - 0.05 <= resumed_at <= resume_at.timestamp() + RESUME_SLACK_SECONDS
    )
    assert statuses[-1] == "succeeded"
    assert_matches_truth(client.get("/api/genres").json(), sandbox.truth("small"))
    assert no_recovery == []


def test_a_scan_waiting_for_the_budget_yields_its_worker_and_goes_on_shown_as_running(
    client: Any, spotify_at_sandbox: Any, monkeypatch: Any
):
    sandbox = spotify_at_sandbox
    sign_in(client, sandbox, "small")
    # A budget of 25 requests per 2 s, and a worker that waits at most 0.3 s for a slot: the
    # scan (about 70 requests) must hand its worker back several times.
    limiter = LocalRateLimiter(25, 2.0, burst=0, margin=0.0, adaptive=False)
    monkeypatch.setattr(ratelimit, "rate_limiter", lambda: limiter)
    monkeypatch.setattr(jobs, "JOB_LIMITER_TIMEOUT", 0.3)
    monkeypatch.setattr("genres.scan_runner.JOB_LIMITER_TIMEOUT", 0.3)
    started = timezone.now()

    scan_id = start_scan(client).json()["id"]
    seen = watch(scan_id)

    statuses = {status for _, status, _, _ in seen}
    assert statuses <= {"queued", "running", "succeeded"}, seen  # never shown as paused
    yields = [claimed for _, _, claimed, _ in seen if claimed.startswith(jobs.YIELD_PREFIX)]
    assert yields, seen
    scan = Scan.objects.get(pk=scan_id)
    assert scan.status == Scan.Status.SUCCEEDED
    assert scan.attempts == 1
    assert scan.started_at >= started
    assert_matches_truth(client.get("/api/genres").json(), sandbox.truth("small"))
