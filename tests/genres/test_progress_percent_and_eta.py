"""One bar across all the steps of a scan, and a time estimate from the request budget."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from genres import progress
from genres.models import Scan
from genres.progress import scan_progress
from genres.selectors import scan_json

BUDGET = 5.0  # requests a second (150 per 30 s)


def running(**fields: object) -> progress.ScanProgress:
    values: dict = {
        "status": "running",
        "step": "fetching_tracks",
        "tracks_total": 10_000,
        "tracks_found": 0,
        "artists_to_fetch": 0,
        "artists_fetched": 0,
        "rate": BUDGET,
    }
    values.update(fields)
    return scan_progress(**values)


def test_the_bar_never_goes_back_when_the_step_changes_from_songs_to_artists() -> None:
    # The library of the issue: 69 % of the songs read, then 208 of 1,922 artists looked up.
    reading = running(tracks_found=6_949, artists_to_fetch=1_336, artists_fetched=150)
    songs_read = running(tracks_found=10_000, artists_to_fetch=1_922, artists_fetched=150)
    looking_up = running(
        step="fetching_artists", tracks_found=10_000, artists_to_fetch=1_922, artists_fetched=208
    )
    assert reading.percent <= songs_read.percent <= looking_up.percent
    assert looking_up.percent > 11  # not the artists' share alone


def test_a_whole_scan_moves_forward_step_by_step() -> None:
    steps = [
        running(step="fetching_profile"),
        running(tracks_found=500, artists_to_fetch=100, artists_fetched=20),
        running(tracks_found=5_000, artists_to_fetch=1_000, artists_fetched=400),
        running(tracks_found=10_000, artists_to_fetch=2_000, artists_fetched=900),
        running(
            step="fetching_artists",
            tracks_found=10_000,
            artists_to_fetch=2_000,
            artists_fetched=900,
        ),
        running(
            step="fetching_artists",
            tracks_found=10_000,
            artists_to_fetch=2_000,
            artists_fetched=2_000,
        ),
        running(step="aggregating", tracks_found=10_000, artists_to_fetch=2_000),
        scan_progress(
            status="succeeded",
            step="done",
            tracks_total=10_000,
            tracks_found=10_000,
            artists_to_fetch=2_000,
            artists_fetched=2_000,
            rate=BUDGET,
        ),
    ]
    percents = [step.percent for step in steps]
    assert percents == sorted(percents)
    assert percents[0] == 0
    assert percents[-2] == 99
    assert percents[-1] == 100
    assert all(0 <= value <= 100 for value in percents)


def test_the_time_left_is_the_requests_left_at_the_budgets_rate() -> None:
    # 200 pages, 100 read; 3,000 artists expected (1,500 so far for half the songs), 500 done.
    half = running(tracks_found=5_000, artists_to_fetch=1_500, artists_fetched=500)
    left = (200 - 100) + (3_000 - 500)
    assert half.requests_left == left
    assert half.eta_seconds == left / BUDGET
    # A budget twice as large halves the estimate.
    doubled = running(tracks_found=5_000, artists_to_fetch=1_500, artists_fetched=500, rate=10.0)
    assert doubled.eta_seconds == half.eta_seconds / 2


def test_a_scan_slower_than_the_budget_is_estimated_at_its_own_rate() -> None:
    slow = running(
        step="fetching_artists",
        tracks_found=10_000,
        artists_to_fetch=1_000,
        artists_fetched=0,
        requests_made=200,
        elapsed_seconds=200.0,  # one request a second so far, the budget allows five
    )
    assert slow.requests_left == 1_000
    assert slow.eta_seconds == 1_000


def test_a_few_slow_first_requests_do_not_predict_the_whole_scan() -> None:
    early = running(requests_made=3, elapsed_seconds=30.0, tracks_found=100)
    assert early.eta_seconds == math.ceil(early.requests_left / BUDGET)


@pytest.mark.parametrize("status", ["queued", "paused", "failed"])
def test_only_a_running_scan_has_a_time_left(status: str) -> None:
    assert running(status=status, tracks_found=100).eta_seconds is None


def test_cached_artists_make_the_estimate_shorter() -> None:
    uncached = running(tracks_found=10_000, step="fetching_artists", artists_to_fetch=2_000)
    cached = running(tracks_found=10_000, step="fetching_artists", artists_to_fetch=50)
    assert cached.eta_seconds < uncached.eta_seconds


def test_the_budget_rate_falls_back_to_the_configured_limit(
    monkeypatch: pytest.MonkeyPatch, settings
) -> None:
    class WithoutRate:
        pass

    settings.SPOTIFY_RATE_LIMIT = 90
    monkeypatch.setattr(progress, "rate_limiter", WithoutRate)
    assert progress.budget_rate() == 3.0

    class WithRate:
        def rate(self) -> float:
            return 7.5

    monkeypatch.setattr(progress, "rate_limiter", WithRate)
    assert progress.budget_rate() == 7.5

    class Broken:
        def rate(self) -> float:
            raise ConnectionError("redis is down")

    monkeypatch.setattr(progress, "rate_limiter", Broken)
    assert progress.budget_rate() == 3.0


@pytest.mark.django_db
def test_the_scan_json_carries_the_percent_the_time_left_and_the_skipped_entries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(progress, "budget_rate", lambda: BUDGET)
    monkeypatch.setattr("genres.selectors.budget_rate", lambda: BUDGET)
    user = get_user_model().objects.create_user("spotify:progress")
    scan = Scan.objects.create(
        user=user,
        status=Scan.Status.RUNNING,
        step=Scan.Step.FETCHING_ARTISTS,
        tracks_total=600,
        tracks_found=581,
        artists_to_fetch=100,
        artists_fetched=40,
        started_at=timezone.now() - timedelta(seconds=5),
    )
    data = scan_json(scan)
    assert data["percent"] == 100 * (1 + 12 + 40) // (1 + 12 + 100)
    assert data["etaSeconds"] == 12  # 60 artists at 5 a second
    assert data["tracksSkipped"] == 19
    # While the pages are read, nothing is called skipped yet.
    scan.step = Scan.Step.FETCHING_TRACKS
    assert scan_json(scan)["tracksSkipped"] == 0
