"""The small pure helpers behind the pages: ages, a scan's error in words, CSV cells."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from genres.pages import age_in_words, csv_cell, scan_error_in_words, scan_view

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ago", "words"),
    [
        (timedelta(seconds=0), "just now"),
        (timedelta(seconds=59), "just now"),
        (timedelta(minutes=1), "1 minute ago"),
        (timedelta(minutes=59, seconds=59), "59 minutes ago"),
        (timedelta(hours=1), "1 hour ago"),
        (timedelta(hours=23), "23 hours ago"),
        (timedelta(days=3), "3 days ago"),
        (timedelta(seconds=-30), "just now"),
    ],
)
def test_it_says_the_age_of_a_result_in_words(ago: timedelta, words: str) -> None:
    assert age_in_words(NOW - ago, NOW) == words


def test_it_puts_the_seeds_error_shape_into_one_sentence() -> None:
    error = {
        "error": "Failed to fetch artist data from Spotify",
        "details": "429: Too Many Requests",
        "step": "fetching_artists",
        "tracksFound": 500,
        "artistsToFetch": 200,
    }
    assert scan_error_in_words(error) == (
        "Failed to fetch artist data from Spotify (429: Too Many Requests) while looking up "
        "the artists' genres. By then: 500 songs found, 200 artists to look up."
    )


def test_it_copes_with_a_partial_or_odd_error() -> None:
    assert scan_error_in_words(None) == ""
    assert scan_error_in_words({}) == ""
    assert scan_error_in_words({"error": "Boom"}) == "Boom."
    assert scan_error_in_words({"step": "nonsense", "tracksFound": "x"}) == "Something went wrong."
    assert scan_error_in_words("plain text") == "plain text"  # type: ignore[arg-type]


def test_a_scan_view_shows_artist_progress_while_fetching_artists() -> None:
    view = scan_view(
        {
            "id": "s1",
            "status": "running",
            "step": "fetching_artists",
            "tracksTotal": 10000,
            "tracksFound": 10000,
            "artistsToFetch": 3100,
            "artistsFetched": 800,
        },
        now=NOW,
    )
    assert view["title"] == "Scanning your library"
    assert view["percent"] is None  # the percent is the scan JSON's (genres.progress)
    assert view["counts"] == "10,000 of 10,000 songs read · 800 of 3,100 artists looked up"
    assert view["error"] == ""


def test_a_paused_scan_view_says_when_it_resumes() -> None:
    view = scan_view(
        {"status": "paused", "step": "fetching_artists", "resumeAt": "2026-11-28T12:42:00Z"},
        now=NOW,
    )
    assert view["resume_at"] == NOW + timedelta(minutes=42)
    assert view["resume_in"] == "in about 42 min"


def test_a_failed_scan_view_has_no_step_but_the_error() -> None:
    view = scan_view(
        {"status": "failed", "step": "fetching_tracks", "error": {"error": "Spotify is down"}},
        now=NOW,
    )
    assert view["step"] == ""
    assert view["error"] == "Spotify is down."
    assert view["percent"] is None
    assert view["eta"] == ""


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@x", "'@x"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        (" =1", "' =1"),
        ("pop", "pop"),
        ("", ""),
        (None, ""),
        (12, "12"),
    ],
)
def test_a_csv_cell_never_starts_a_formula(value: object, cell: str) -> None:
    assert csv_cell(value) == cell


@pytest.mark.parametrize(
    ("language", "value", "expected"),
    [
        ("en", 999, "999"),
        ("en", -999, "-999"),
        ("en", 1000, "1,000"),
        ("en", 1234567, "1,234,567"),
        ("sv", 999, "999"),
        ("sv", 1234, "1\xa0234"),
    ],
)
def test_counts_are_grouped_in_the_language_of_the_page(language, value, expected) -> None:
    from django.utils import translation

    from genres.pages import grouped

    with translation.override(language):
        assert grouped(value) == expected
