"""A scan cut into many slices (it yields its worker whenever another listener's work waits)
against the sandbox over HTTP: it ends at the truth, every Spotify request was sent once (the
pages and lookups in flight at a yield are stored, none is paid twice), the listener sees it
running all along, and a duplicate of an old slice's message does nothing. Tasks are called
directly, one slice after another, with the token each yield queued."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from genres import jobs, ratelimit, scan_runner, scans, tasks
from genres.jobs import RUN_NOT_CLAIMED, RUN_YIELDED
from genres.models import Scan
from tests.genres.conftest import sign_in
from tests.genres.test_scan_sandbox import assert_matches_truth, route_count, start_scan

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]


@pytest.fixture(autouse=True)
def _fresh_limiter() -> None:
    """A fresh process-wide rate limiter: what an earlier test's 429s taught it (a lower
    budget, a hold) must not slow this test down or make its scan wait for the budget."""
    ratelimit._limiters.clear()


MAX_SLICES = 400


@pytest.fixture
def sent(monkeypatch: Any) -> list[dict[str, Any]]:
    """The messages yields queue (nothing reaches a broker)."""
    messages: list[dict[str, Any]] = []
    monkeypatch.setattr(scans, "job_enqueue", lambda **message: messages.append(message))
    return messages


@pytest.fixture
def short_slices(settings: Any, monkeypatch: Any) -> None:
    settings.SWEDIFY_JOB_SLICE_SECONDS = 0.3
    monkeypatch.setattr(jobs, "WAITING_CHECK_EVERY", 0.0)
    # Progress writes are where a slice ends: often, so the small scan ends several.
    monkeypatch.setattr(scan_runner, "PROGRESS_EVERY", 0.05)


def another_listener_waits() -> None:
    other = get_user_model().objects.create_user("spotify:someone-else")
    Scan.objects.create(user=other, sources=["liked"])  # queued: it waits for a worker


def test_a_scan_run_in_many_slices_pays_every_request_once_and_ends_at_the_truth(
    client, spotify_at_sandbox, sent, short_slices
):
    sandbox = spotify_at_sandbox
    sign_in(client, sandbox, "small")
    sandbox.set_faults(latency_ms=100)
    sandbox.reset_stats()
    another_listener_waits()
    scan_id = start_scan(client).json()["id"]

    seen: list[tuple[str, str]] = []
    outcome, token, slices = RUN_YIELDED, "", 0
    while outcome == RUN_YIELDED and slices < MAX_SLICES:
        outcome = tasks.scan_run(scan_id, token)
        slices += 1
        shown = client.get(f"/api/scans/{scan_id}").json()
        seen.append((shown["status"], shown["step"]))
        if outcome == RUN_YIELDED:
            token = sent[-1]["token"]

    assert outcome == Scan.Status.SUCCEEDED
    assert slices >= 3
    # Between slices the listener sees a running scan, never a pause or a failure.
    assert {status for status, _ in seen[:-1]} == {"running"}
    assert_matches_truth(client.get("/api/genres").json(), sandbox.truth("small"))
    stats = sandbox.stats()
    assert route_count(stats, "GET /v1/me") == 1
    assert route_count(stats, "GET /v1/me/tracks") == 3  # 120 songs, 50 a page
    lookups = Counter(
        entry["path"]
        for entry in sandbox.requests(limit=2000)
        if entry["route"] == "/v1/artists/{id}"
    )
    assert lookups
    assert max(lookups.values()) == 1
    assert Scan.objects.get(pk=scan_id).attempts == 1  # slices, not retries


def test_an_old_slices_message_delivered_again_does_nothing(
    client, spotify_at_sandbox, sent, short_slices
):
    sign_in(client, spotify_at_sandbox, "small")
    spotify_at_sandbox.set_faults(latency_ms=100)
    another_listener_waits()
    scan_id = start_scan(client).json()["id"]
    assert tasks.scan_run(scan_id) == RUN_YIELDED
    first_token = sent[-1]["token"]
    assert tasks.scan_run(scan_id, first_token) == RUN_YIELDED
    before = Scan.objects.filter(pk=scan_id).values().get()
    messages = len(sent)
    spotify_at_sandbox.reset_stats()

    assert tasks.scan_run(scan_id, first_token) == RUN_NOT_CLAIMED
    assert tasks.scan_run(scan_id) == RUN_NOT_CLAIMED

    assert Scan.objects.filter(pk=scan_id).values().get() == before
    assert spotify_at_sandbox.stats()["total"] == 0
    assert len(sent) == messages  # nothing queued again: messages never multiply
