"""The listener pages in a real browser: filtering, grouping, selecting, creating playlists
and live progress, all under the strict CSP and without reloading the page (the exports are
in test_exports_in_the_browser.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from genres.models import PlaylistJob, Scan
from tests.genres.test_pages import make_result, make_scan

pytestmark = pytest.mark.browser

GENRES = [
    ("swedish pop", 120),
    ("indie rock", 60),
    ("swedish hip hop", 40),
    ("deep house", 12),
    ("garage rock", 3),
    ('"><img src=x onerror=alert(1)>', 2),
]


def visible_genres(page: Any) -> list[str]:
    return page.locator(".genre-row:not(.unclassified):visible .genre-name").all_inner_texts()


def test_search_hide_small_and_family_grouping_work_without_reloading(
    live_server: Any, listener_page: Any
) -> None:
    page, user, console = listener_page
    make_result(user, GENRES, unclassified=5)
    page.goto(f"{live_server.url}/genres")
    expect(page.locator("body[data-ready=true]")).to_have_count(1)
    page.evaluate("window.__sameDocument = true")
    assert visible_genres(page) == [name for name, _ in GENRES]
    # The hostile name is only text: no image element was made from it.
    assert page.locator("img").count() == 0

    page.fill("#genre-search", "SWEDISH")
    expect(page.locator(".genre-row:not(.unclassified):visible")).to_have_count(2)
    assert visible_genres(page) == ["swedish pop", "swedish hip hop"]
    expect(page.locator(".js-visible-count")).to_have_text("Showing 2 of 6 genres.")

    page.fill("#genre-search", "no such genre")
    expect(page.locator(".js-no-match")).to_be_visible()

    page.fill("#genre-search", "")
    page.fill("#genre-min", "40")
    expect(page.locator(".genre-row:not(.unclassified):visible")).to_have_count(3)

    page.fill("#genre-min", "1")
    page.check("#genre-group")
    families = page.locator("#genre-families section.family:visible h3 .family-name")
    expect(families).to_have_text(["Pop", "Rock", "Electronic & dance", "Hip hop & rap", "Other"])
    rock = page.locator('#genre-families section[data-family="rock"] .genre-name')
    expect(rock).to_have_text(["indie rock", "garage rock"])
    expect(page.locator("#genre-list")).to_be_hidden()

    # Filters apply inside the grouped view; empty families disappear.
    page.fill("#genre-search", "rock")
    expect(families).to_have_text(["Rock"])
    page.uncheck("#genre-group")
    expect(page.locator("#genre-list")).to_be_visible()
    assert visible_genres(page) == ["indie rock", "garage rock"]
    assert page.evaluate("window.__sameDocument") is True
    assert console.csp_violations == []


def test_selected_genres_become_a_playlist_job_whose_results_appear_live(
    live_server: Any, listener_page: Any, queued_jobs: list[str]
) -> None:
    page, user, console = listener_page
    make_result(user, GENRES, unclassified=5)
    page.goto(f"{live_server.url}/genres")
    expect(page.locator("body[data-ready=true]")).to_have_count(1)
    create = page.locator(".js-create")
    expect(create).to_be_disabled()

    page.locator('.js-genre[value="swedish pop"]').check()
    page.locator('.js-genre[value="indie rock"]').check()
    page.locator('.js-genre[value="Unclassified"]').check()
    expect(page.locator(".js-selected-count")).to_have_text("3 genres selected (up to 50).")
    expect(page.locator(".js-selected-list li")).to_have_text(
        ["swedish pop", "indie rock", "Unclassified"]
    )
    page.fill("#name-pattern", "no placeholder")
    create.click()
    expect(page.locator("#playlist-form .form-message")).to_contain_text("must contain {genre}")

    page.fill("#name-pattern", "{genre} · mine")
    page.fill("#playlist-description", "Made by Swedify")
    page.uncheck('input[name="skipDuplicates"]')
    create.click()
    expect(page.locator(".js-job-title")).to_have_text("Playlists waiting to start")

    job = PlaylistJob.objects.get(user=user)
    assert queued_jobs == [str(job.id)]
    assert job.genres == ["swedish pop", "indie rock", "Unclassified"]
    assert (job.name_pattern, job.description, job.skip_duplicates) == (
        "{genre} · mine",
        "Made by Swedify",
        False,
    )
    rows = page.locator(".js-job-results tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("Waiting")

    # The worker's progress, written to the row, reaches the page without a reload.
    PlaylistJob.objects.filter(pk=job.pk).update(
        status=PlaylistJob.Status.RUNNING,
        results=[
            {
                "genre": "swedish pop",
                "status": "created",
                "playlistId": "p1",
                "url": "https://open.spotify.com/playlist/p1",
                "tracksAdded": 120,
                "tracksTotal": 120,
                "error": None,
            }
        ],
    )
    expect(page.locator(".js-job-title")).to_have_text("Creating playlists")
    expect(rows.nth(0)).to_contain_text("Created")
    expect(rows.nth(0)).to_contain_text("120 added of 120")
    link = rows.nth(0).locator("a")
    expect(link).to_have_attribute("href", "https://open.spotify.com/playlist/p1")

    PlaylistJob.objects.filter(pk=job.pk).update(
        status=PlaylistJob.Status.PARTIAL,
        results=[
            *PlaylistJob.objects.get(pk=job.pk).results,
            {
                "genre": "indie rock",
                "status": "failed",
                "playlistId": None,
                "url": "javascript:alert(1)",
                "tracksAdded": 40,
                "tracksTotal": 60,
                "error": "Spotify answered 503",
            },
            {
                "genre": "Unclassified",
                "status": "skipped",
                "playlistId": None,
                "url": None,
                "tracksAdded": 0,
                "tracksTotal": 5,
                "error": None,
                "reason": "you already have a playlist named 'Unclassified · mine'",
            },
        ],
    )
    expect(page.locator(".js-job-title")).to_have_text("Some playlists could not be finished")
    expect(rows.nth(1)).to_contain_text("Failed: Spotify answered 503")
    expect(rows.nth(1)).to_contain_text("40 added of 60")
    expect(rows.nth(1).locator("a")).to_have_count(0)  # never a javascript: link
    expect(rows.nth(2)).to_contain_text("Skipped: you already have a playlist")
    expect(page.locator(".js-job-summary")).to_have_text("3 of 3 genres done.")
    assert console.csp_violations == []


def test_at_most_fifty_genres_can_be_selected(live_server: Any, listener_page: Any) -> None:
    page, user, _ = listener_page
    make_result(user, [(f"genre {index:02d}", 60 - index) for index in range(55)])
    page.goto(f"{live_server.url}/genres")
    expect(page.locator("body[data-ready=true]")).to_have_count(1)
    boxes = page.locator("#genre-list .js-genre")
    for index in range(50):
        boxes.nth(index).check()
    expect(page.locator(".js-selected-count")).to_have_text(
        "50 of 50 genres selected: that is the most at one time."
    )
    expect(boxes.nth(50)).to_be_disabled()
    boxes.nth(0).uncheck()
    expect(boxes.nth(50)).to_be_enabled()


def test_scan_progress_updates_live_and_ends_with_a_link_to_the_genres(
    live_server: Any, listener_page: Any
) -> None:
    page, user, console = listener_page
    scan = make_scan(
        user,
        status=Scan.Status.RUNNING,
        step=Scan.Step.FETCHING_TRACKS,
        tracks_total=10000,
        tracks_found=200,
    )
    page.goto(f"{live_server.url}/")
    expect(page.locator("body[data-ready=true]")).to_have_count(1)
    page.evaluate("window.__sameDocument = true")
    counts = page.locator(".js-scan-counts")
    expect(counts).to_have_text("200 of 10,000 songs read")
    expect(page.locator(".js-scan-step")).to_have_text("Reading your songs")

    # Artists are looked up while the songs are still read.
    Scan.objects.filter(pk=scan.pk).update(
        tracks_found=4200, artists_to_fetch=1200, artists_fetched=300
    )
    expect(page.locator(".js-scan-step")).to_have_text(
        "Reading your songs and looking up their artists"
    )
    expect(counts).to_have_text("4,200 of 10,000 songs read · 300 of 1,200 artists looked up")

    Scan.objects.filter(pk=scan.pk).update(
        step=Scan.Step.FETCHING_ARTISTS,
        tracks_found=10000,
        artists_to_fetch=3100,
        artists_fetched=800,
    )
    expect(page.locator(".js-scan-step")).to_have_text("Looking up the artists' genres")
    expect(counts).to_have_text("10,000 of 10,000 songs read · 800 of 3,100 artists looked up")

    Scan.objects.filter(pk=scan.pk).update(
        status=Scan.Status.FAILED,
        error={
            "error": "Failed to fetch artist data from Spotify",
            "details": "503: Service Unavailable",
            "step": "fetching_artists",
            "tracksFound": 10000,
            "artistsToFetch": 3100,
        },
    )
    expect(page.locator(".js-scan-title")).to_have_text("Scan failed")
    expect(page.locator(".js-scan-error")).to_have_text(
        "Failed to fetch artist data from Spotify (503: Service Unavailable) while looking up "
        "the artists' genres. By then: 10,000 songs found, 3,100 artists to look up."
    )
    expect(page.locator(".js-scan-failed-actions a")).to_have_attribute("href", "/auth/spotify")
    assert page.evaluate("window.__sameDocument") is True
    assert console.csp_violations == []


def test_try_again_starts_a_new_scan_and_follows_it(
    live_server: Any, listener_page: Any, queued_jobs: list[str]
) -> None:
    page, user, _ = listener_page
    make_scan(
        user,
        status=Scan.Status.FAILED,
        sources=["liked"],
        error={"error": "Spotify is unreachable", "step": "fetching_tracks"},
    )
    page.goto(f"{live_server.url}/")
    expect(page.locator(".js-scan-title")).to_have_text("Scan failed")
    unscanned = page.get_by_text("You have not scanned your library yet")
    expect(unscanned).to_be_visible()
    page.locator(".js-scan-retry").click()
    expect(page.locator(".js-scan-title")).to_have_text("Scan waiting to start")
    new_scan = Scan.objects.filter(user=user, status=Scan.Status.QUEUED).get()
    assert queued_jobs == [str(new_scan.id)]
    # The worker stores the result, then marks the scan done: the library card is refreshed.
    make_result(user, GENRES, unclassified=5, age=timedelta(0))
    Scan.objects.filter(pk=new_scan.pk).update(status=Scan.Status.SUCCEEDED, step=Scan.Step.DONE)
    expect(page.locator("main a[href='/genres']:visible")).to_have_count(1)
    expect(page.locator("#library-card")).to_contain_text("just now")
    expect(unscanned).to_be_hidden()
