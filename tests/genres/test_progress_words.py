"""The progress panel's words match its numbers: songs read of Spotify's entries, artists looked
up (not all artists), skipped entries explained, a time left, and no step before a scan starts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from genres.pages import eta_in_words, scan_counts_in_words, scan_view
from tests.genres.test_pages import assert_csp_clean, make_listener, make_scan, signed_in

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (None, ""),
        (0, "Less than a minute left"),
        (59, "Less than a minute left"),
        (60, "About 1 minute left"),
        (61, "About 2 minutes left"),  # rounded up: the budget's estimate is a lower bound
        (427, "About 8 minutes left"),
        (3600, "About 1 hour left"),
        (3601, "About 1 hour 1 minute left"),
        (2 * 3600 + 5 * 60, "About 2 hours 5 minutes left"),
    ],
)
def test_the_time_left_in_words(seconds: int | None, words: str) -> None:
    assert eta_in_words(seconds) == words


def test_counts_while_reading_say_songs_read_of_spotifys_total_and_artists_looked_up() -> None:
    counts, note = scan_counts_in_words(
        {"tracksTotal": 10_000, "tracksFound": 6_949, "artistsToFetch": 1_336, "artistsFetched": 9}
    )
    assert counts == "6,949 of 10,000 songs read · 9 of 1,336 artists looked up"
    assert "may have more artists than this" in note
    assert "not counted" not in note


def test_entries_that_are_not_songs_are_explained_once_every_page_is_read() -> None:
    counts, note = scan_counts_in_words(
        {"tracksTotal": 600, "tracksFound": 581, "tracksSkipped": 19}
    )
    assert counts == "581 of 600 songs read"
    assert note.startswith("19 entries of your library are not counted: local files")
    _, one = scan_counts_in_words({"tracksTotal": 2, "tracksFound": 1, "tracksSkipped": 1})
    assert one.startswith("1 entry of your library is not counted: a local file")


def test_a_queued_scan_shows_no_step_yet() -> None:
    view = scan_view({"status": "queued", "step": "fetching_profile", "percent": 0}, now=NOW)
    assert view["title"] == "Scan waiting to start"
    assert view["step"] == ""
    assert view["eta"] == ""


def test_a_running_scan_view_has_its_percent_and_time_left() -> None:
    view = scan_view(
        {
            "status": "running",
            "step": "fetching_artists",
            "tracksTotal": 100,
            "tracksFound": 100,
            "artistsToFetch": 50,
            "artistsFetched": 25,
            "percent": 63,
            "etaSeconds": 125,
        },
        now=NOW,
    )
    assert view["percent"] == 63
    assert view["eta"] == "About 3 minutes left"
    assert view["step"] == "Looking up the artists' genres"


@pytest.mark.django_db
def test_the_home_page_shows_the_bar_the_time_left_and_announces_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("genres.selectors.budget_rate", lambda: 5.0)
    user = make_listener()
    make_scan(
        user,
        status="running",
        step="fetching_artists",
        tracks_total=600,
        tracks_found=581,
        artists_to_fetch=1000,
        artists_fetched=400,
        finished_at=None,
    )
    markup = assert_csp_clean(signed_in(user).get("/"))
    assert "About 2 minutes left" in markup.text  # 600 artists at 5 a second
    assert "19 entries of your library are not counted" in markup.text
    progress = markup.find("progress", id="scan-progress")[0]
    assert progress["max"] == "100"
    assert progress["value"] == str(100 * (1 + 12 + 400) // (1 + 12 + 1000))
    live = [attrs for tag, attrs in markup.tags if attrs.get("aria-live") == "polite"]
    assert live
    # The home page's panel has no button of its own: the library card has the one link.
    assert not markup.find("a", **{"class": "button js-scan-done-link"})


@pytest.mark.django_db
def test_a_queued_scan_on_the_home_page_shows_no_step() -> None:
    user = make_listener()
    make_scan(user, status="queued", step="fetching_profile", finished_at=None)
    markup = assert_csp_clean(signed_in(user).get("/"))
    assert "Scan waiting to start" in markup.text
    assert "Checking your Spotify account" not in markup.text
