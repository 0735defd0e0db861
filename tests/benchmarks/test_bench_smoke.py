"""The scan and pages benchmarks' own machinery on tiny inputs, so the harness cannot rot
unnoticed: the request formulas, a real scan against the sandbox counted by the sandbox, the
request-count, Extended Quota and concurrency phases end to end, and the pages fixture."""

from __future__ import annotations

import json
from typing import Any

import pytest

from benchmarks import listeners, pages, scan
from benchmarks.harness import percentile
from sandbox.testing import running_sandbox

# scan_start queues its task on commit: the scans need real transactions.
with_scans = pytest.mark.django_db(transaction=True)

TINY_TRACKS = 120
TINY_ARTISTS = 40
TINY_OFFSETS = {"a": 1_000, "c": 2_000}


@pytest.fixture
def sandbox(settings: Any, monkeypatch: Any) -> Any:
    from genres import spotify

    with running_sandbox(default_users=False) as running:
        settings.SPOTIFY_ACCOUNTS_URL = running.accounts_url
        settings.SPOTIFY_API_URL = running.api_url
        settings.SPOTIFY_CONCURRENCY = 8
        monkeypatch.setattr(spotify, "DEFAULT_BACKOFF_BASE", 0.001)
        yield running


def test_the_formulas_are_the_issues():
    assert scan.dev_mode_bound(tracks=10_000, artists=3_000) == 1 + 200 + 3_000
    # 900 followed artists come in 18 requests of 50 instead of 900 lookups.
    assert scan.dev_mode_bound(tracks=10_000, artists=3_000, harvestable=900) == (
        1 + 200 + 18 + 2_100
    )
    assert scan.extended_bound(tracks=10_000, artists=3_000) == 1 + 200 + 60
    assert scan.pages(0) == 0
    assert scan.pages(51) == 2
    assert scan.budget_seconds(300, 150) == pytest.approx(60.0)
    assert scan.rolling_window_floor(161, 150, 30) == 30
    assert scan.rolling_window_floor(150, 150, 30) == 0
    assert scan.allowed_429s(161) == 1
    assert scan.allowed_429s(1_000) == 10


@with_scans
@pytest.mark.integration
def test_a_tiny_cold_scan_costs_what_the_formula_says(sandbox):
    listeners.artist_cache_clear()
    spec = listeners.listener_spec(
        "tiny", tracks=TINY_TRACKS, artists=TINY_ARTISTS, offset=5_000, exact_artists=True
    )
    user = listeners.listener_create(sandbox, spec)

    with scan.fresh_limiter(0):
        run = scan.scan_measure(sandbox, user)

    assert run.status == "succeeded"
    assert sandbox.truth("tiny")["totalArtists"] == TINY_ARTISTS
    assert run.route("GET /v1/me") == 1
    assert run.route("GET /v1/me/tracks") == scan.pages(TINY_TRACKS) == 3
    assert run.artist_lookups == TINY_ARTISTS
    bound = scan.dev_mode_bound(tracks=TINY_TRACKS, artists=TINY_ARTISTS)
    assert bound == 1 + 3 + 40
    assert bound <= run.requests <= bound + scan.HANDFUL
    # The sandbox's count and the stats reset per scan: an unchanged rescan is tiny.
    with scan.fresh_limiter(0):
        again = scan.scan_measure(sandbox, user)
    assert again.requests <= scan.RESCAN_NOTHING_NEW_MAX
    assert again.artist_lookups == 0


@with_scans
@pytest.mark.integration
def test_the_request_phase_meets_its_targets_on_a_tiny_library(sandbox):
    rows = scan.phase_requests(
        sandbox, tracks=TINY_TRACKS, artists=TINY_ARTISTS, prefix="smoke", offsets=TINY_OFFSETS
    )

    assert len(rows) == 5
    assert [row for row in rows if not row.ok] == []
    assert "half of 40" in rows[3].target
    assert rows[3].figure.startswith("20 artist lookups")


@with_scans
@pytest.mark.integration
def test_the_extended_quota_phase_compares_every_genre_with_the_truth(sandbox):
    rows = scan.phase_extended(
        sandbox,
        tracks=TINY_TRACKS,
        artists=TINY_ARTISTS,
        latency_ms=0,
        prefix="smoke",
        offset=3_000,
        max_seconds=30,
    )

    assert [row.name for row in rows if not row.ok] == []
    assert rows[1].ratio == "exact"
    # Development Mode is back for whoever uses the sandbox next.
    assert sandbox.configure()["extended_quota"] is False


def test_truth_mismatches_names_what_differs():
    payload = {
        "genres": [{"name": "pop", "count": 2, "trackIds": ["b", "a"]}],
        "unclassified": {"count": 1, "trackIds": ["c"]},
        "totalTracks": 3,
        "totalArtists": 2,
        "totalGenres": 1,
    }
    truth = {
        "genres": {"pop": ["a", "b"]},
        "unclassified": ["c"],
        "totalTracks": 3,
        "totalArtists": 2,
        "totalGenres": 1,
    }
    assert scan.truth_mismatches(payload, truth) == []
    truth["genres"] = {"pop": ["a"], "rock": ["b"]}
    assert scan.truth_mismatches(payload, truth) == ["genre 'pop'", "genre 'rock'"]


@with_scans
@pytest.mark.integration
def test_the_concurrency_phase_times_the_same_scan_both_ways(sandbox):
    # About 42 requests: at 80 ms each, 3.4 s one at a time against about 0.6 s eight at a
    # time. Both runs pay the same CPU work on top (X s), so the ratio stays above 1.5 until
    # X exceeds 5 s, which no busy machine comes near; with no concurrency at all it is 1.0.
    # (At 20 ms, 1.3 s of CPU on a loaded machine sufficed to fail it.)
    rows = scan.phase_concurrency(
        sandbox, tracks=60, artists=40, latency_ms=80, prefix="smoke", offset=4_000, min_speedup=1.5
    )

    assert len(rows) == 1
    assert rows[0].ok, rows[0]


@with_scans
@pytest.mark.integration
def test_the_memory_worker_reports_its_scan_and_its_peak_rss(sandbox, capsys):
    listeners.artist_cache_clear()
    spec = listeners.listener_spec("memory", tracks=TINY_TRACKS, artists=TINY_ARTISTS, offset=6_000)
    user = listeners.listener_create(sandbox, spec)

    assert scan.memory_worker(user.pk, sandbox.url) == 0

    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(scan.MEMORY_MARKER)]
    data = json.loads(lines[-1][len(scan.MEMORY_MARKER) :])
    assert data["status"] == "succeeded"
    assert data["artists"] == sandbox.truth("memory")["totalArtists"]
    assert data["requests"] >= scan.dev_mode_bound(tracks=TINY_TRACKS, artists=0)
    assert data["peak_kb"] >= data["idle_kb"] > 0


def test_the_pages_fixture_has_the_issues_size():
    payload = pages.result_payload()

    assert payload["totalTracks"] == pages.TRACKS == 10_000
    assert payload["totalGenres"] == pages.GENRES == 1_000
    assert payload["unclassified"]["count"] > 0
    counts = [genre["count"] for genre in payload["genres"]]
    assert counts == sorted(counts, reverse=True)
    assert counts[0] > 5 * counts[-1]
    assert set(pages.HOSTILE_GENRES) <= {genre["name"] for genre in payload["genres"]}


def test_percentile_is_nearest_rank():
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0], 0.95) == 3.0


@with_scans
@pytest.mark.integration
def test_a_scan_that_yields_between_slices_is_measured_to_its_end(sandbox, settings, monkeypatch):
    from genres import jobs

    # Another listener's work always waits and the slice is the shortest there is: at 100 ms
    # a request the scan (about a second) yields its worker several times, as on a busy
    # system. Called once, it would stay unfinished and the next scan_measure would crash
    # ("scan_start did not queue a new scan").
    monkeypatch.setattr(jobs, "waiting_work", lambda **_: True)
    monkeypatch.setattr(jobs, "WAITING_CHECK_EVERY", 0.0)
    settings.SWEDIFY_JOB_SLICE_SECONDS = 0
    sandbox.set_faults(latency_ms=100)
    listeners.artist_cache_clear()
    spec = listeners.listener_spec("yields", tracks=TINY_TRACKS, artists=TINY_ARTISTS, offset=7_000)
    user = listeners.listener_create(sandbox, spec)

    with scan.fresh_limiter(0):
        first = scan.scan_measure(sandbox, user)
        again = scan.scan_measure(sandbox, user)

    assert first.slices > 1
    assert first.status == again.status == "succeeded"
    assert first.requests >= scan.dev_mode_bound(tracks=TINY_TRACKS, artists=0)
