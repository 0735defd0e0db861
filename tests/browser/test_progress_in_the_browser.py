"""Scan progress as a listener watches it, in English and Swedish: one bar that only moves
forward across the steps, live counts in the language's number format, a time-left estimate,
changes announced through aria-live, and a home page whose library card is refreshed (with one
"See your genres" button) when the scan ends.

The test plays the worker by writing the scan row; the page polls it every 0.2 s here.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone, translation
from django.utils.formats import number_format
from playwright.sync_api import expect

from genres.models import Scan
from tests.genres.test_pages import make_listener, make_result, make_scan

pytestmark = pytest.mark.browser


def grouped(value: int, language: str) -> str:
    """A count as the page must write it in `language` ("10,000"; "10 000" with U+00A0)."""
    with translation.override(language):
        return number_format(value, force_grouping=True)


def bar_value(page: Any) -> float:
    """How far the bar is, 0 to 1."""
    return page.locator("#scan-progress").evaluate("bar => bar.position")


# The worker's writes, in order: songs read, artists looked up while songs are still read,
# all songs read and artists looked up, then the aggregation.
SCAN_STEPS: list[dict[str, Any]] = [
    {"step": Scan.Step.FETCHING_TRACKS, "tracks_found": 200},
    {"step": Scan.Step.FETCHING_TRACKS, "tracks_found": 6949},
    {
        "step": Scan.Step.FETCHING_TRACKS,
        "tracks_found": 9000,
        "artists_to_fetch": 1922,
        "artists_fetched": 208,
    },
    {
        "step": Scan.Step.FETCHING_ARTISTS,
        "tracks_found": 10000,
        "artists_to_fetch": 1922,
        "artists_fetched": 400,
    },
    {
        "step": Scan.Step.FETCHING_ARTISTS,
        "tracks_found": 10000,
        "artists_to_fetch": 1922,
        "artists_fetched": 1900,
    },
]


@pytest.mark.parametrize("language", ["en", "sv"])
def test_the_bar_only_moves_forward_across_steps_with_live_counts_and_time_left(
    listener_browser: Any, language: str
) -> None:
    user = make_listener()
    scan = make_scan(
        user,
        status=Scan.Status.RUNNING,
        step=Scan.Step.FETCHING_TRACKS,
        tracks_total=10000,
        tracks_found=0,
        finished_at=None,
    )
    page, _ = listener_browser.open("/", language=language, user=user)
    expect(page.locator("body[data-ready=true]")).to_have_count(1)
    page.evaluate("window.__sameDocument = true")
    counts = page.locator(".js-scan-counts")
    # The step and the time left are read out as they change; not the counts, which change
    # with every poll, nor the bar's every tick.
    live = page.locator("#scan-status [aria-live=polite]")
    expect(live.locator(".js-scan-step")).to_have_count(1)
    expect(live.locator(".js-scan-eta")).to_have_count(1)
    expect(live.locator(".js-scan-counts, progress")).to_have_count(0)

    positions = []
    for write in SCAN_STEPS:
        Scan.objects.filter(pk=scan.pk).update(**write)
        expect(counts).to_contain_text(grouped(write["tracks_found"], language))
        expect(counts).to_contain_text(grouped(10000, language))
        if write.get("artists_to_fetch"):
            expect(counts).to_contain_text(grouped(write["artists_fetched"], language))
            expect(counts).to_contain_text(grouped(write["artists_to_fetch"], language))
        positions.append(bar_value(page))
        expect(page.locator(".js-scan-eta")).to_be_visible()
        expect(page.locator(".js-scan-eta")).not_to_be_empty()

    # The old page went from 69 % back to 11 % when the artists' step began.
    assert positions == sorted(positions), positions
    assert positions[0] < 0.1 < 0.5 < positions[-1] < 1, positions
    assert page.evaluate("window.__sameDocument") is True


@pytest.mark.parametrize("language", ["en", "sv"])
def test_the_home_card_is_refreshed_when_a_rescan_ends_with_one_see_your_genres_button(
    listener_browser: Any, language: str
) -> None:
    user = make_listener()
    make_result(user, [("swedish pop", 10), ("indie rock", 5)], age=timedelta(minutes=12))
    scan = make_scan(
        user,
        status=Scan.Status.RUNNING,
        step=Scan.Step.FETCHING_ARTISTS,
        tracks_total=1500,
        tracks_found=1500,
        artists_to_fetch=300,
        artists_fetched=30,
        finished_at=None,
    )
    page, _ = listener_browser.open("/", language=language, user=user)
    expect(page.locator("body[data-ready=true]")).to_have_count(1)
    page.evaluate("window.__sameDocument = true")
    card = page.locator("#library-card")
    expect(card).to_contain_text(grouped(15, language))
    see_genres = page.locator("main a[href='/genres']:visible")
    expect(see_genres).to_have_count(1)

    # The worker finishes: the new result is written, then the scan is marked done.
    make_result(user, [("swedish pop", 1200), ("indie rock", 300)], age=timedelta(0))
    Scan.objects.filter(pk=scan.pk).update(
        status=Scan.Status.SUCCEEDED, step=Scan.Step.DONE, artists_fetched=300
    )
    expect(card).to_contain_text(grouped(1500, language))
    with translation.override(language):
        just_now = translation.gettext("just now")
    expect(card).to_contain_text(just_now)
    expect(see_genres).to_have_count(1)
    assert page.evaluate("window.__sameDocument") is True


@pytest.mark.parametrize("language", ["en", "sv"])
def test_a_waiting_scan_names_no_step_and_a_read_library_explains_its_missing_songs(
    listener_browser: Any, language: str
) -> None:
    user = make_listener()
    scan = make_scan(
        user,
        status=Scan.Status.QUEUED,
        step=Scan.Step.FETCHING_PROFILE,
        started_at=None,
        finished_at=None,
    )
    page, _ = listener_browser.open("/", language=language, user=user)
    expect(page.locator("body[data-ready=true]")).to_have_count(1)
    with translation.override(language):
        waiting = translation.gettext("Scan waiting to start")
        checking = translation.gettext("Checking your Spotify account")
    expect(page.locator(".js-scan-title")).to_have_text(waiting)
    # "Scan waiting to start" once stood beside "Checking your Spotify account".
    expect(page.locator("#scan-status")).not_to_contain_text(checking)

    # Every page read: 581 songs of Spotify's 600 entries. The page says why 19 are missing.
    Scan.objects.filter(pk=scan.pk).update(
        status=Scan.Status.RUNNING,
        step=Scan.Step.FETCHING_ARTISTS,
        started_at=timezone.now(),
        tracks_total=600,
        tracks_found=581,
        artists_to_fetch=92,
        artists_fetched=10,
    )
    expect(page.locator(".js-scan-counts")).to_contain_text(grouped(581, language))
    note = page.locator(".js-scan-note")
    expect(note).to_be_visible()
    expect(note).to_contain_text("19")
