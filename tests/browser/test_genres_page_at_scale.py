"""The genres page of a big library, in English and Swedish, on a laptop and a phone: the
selection bar stays in view with the job's progress and result, families start collapsed,
"Select all shown", results and "Your playlists" after a reload, Create disabled while a job
runs, the Unclassified row hidden by a search that matches nothing, and a short way by
keyboard to the playlist name.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone, translation
from django.utils.formats import date_format, number_format
from playwright.sync_api import expect

from genres.models import GenrePlaylist, PlaylistJob
from tests.browser.checks import axe_problems, heading_problems, js_text
from tests.genres.test_pages import make_listener, make_result

pytestmark = pytest.mark.browser

# 300 genres over every family, like the 1,549 of a real big library (the page collapses
# families from 150 genres on).
FAMILY_WORDS = ["pop", "rock", "house", "hip hop", "jazz", "metal", "folk", "techno", "soul"]
MANY_GENRES = [
    (f"{place} {FAMILY_WORDS[index % len(FAMILY_WORDS)]}", 400 - index)
    for index, place in enumerate(f"region{number:03d}" for number in range(300))
]


def in_viewport(page: Any, selector: str) -> bool:
    """Whether the element is entirely on screen."""
    return page.locator(selector).evaluate(
        """el => { const r = el.getBoundingClientRect();
                   return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight + 1; }"""
    )


def many_genres_listener() -> Any:
    user = make_listener()
    make_result(user, MANY_GENRES, unclassified=7)
    return user


def genres_page(listener_browser: Any, user: Any, **options: Any) -> Any:
    page, _ = listener_browser.open("/genres", user=user, **options)
    expect(page.locator("body[data-ready=true]")).to_have_count(1)
    return page


# Each size and each language once (pairs, not the full product: the browser part stays quick).
@pytest.mark.parametrize(("language", "size"), [("en", "desktop"), ("sv", "mobile")])
def test_the_selection_bar_stays_in_view_with_the_jobs_progress_and_result(
    listener_browser: Any, language: str, size: str, queued_jobs: list[str]
) -> None:
    user = make_listener()
    make_result(user, MANY_GENRES[:120], unclassified=7)
    page = genres_page(listener_browser, user, language=language, size=size)
    bar = page.locator("#selection-bar")
    expect(bar).to_contain_text(js_text(language, "No genre selected"))
    assert in_viewport(page, "#selection-bar")

    page.locator("#genre-search").fill("pop")
    page.locator("#select-shown").click()
    expect(bar.locator(".js-bar-count")).to_have_text(
        js_text(language, "%(n)s selected", "%(n)s selected", 14).replace("%(n)s", "14")
    )
    # Far down the whole list the bar is still on screen, and takes the listener to the form.
    page.locator("#genre-search").fill("")
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight * 0.6)")
    assert page.evaluate("window.scrollY") > 500
    assert in_viewport(page, "#selection-bar")
    page.locator("#bar-create").click()
    expect(page.locator("#name-pattern")).to_be_in_viewport()
    page.locator("#create-playlists").click()

    progress = bar.locator(".js-bar-job")
    expect(progress).to_be_visible()
    job = PlaylistJob.objects.get(user=user)
    assert queued_jobs == [str(job.id)]
    assert len(job.genres) == 14
    expect(progress).to_contain_text(
        js_text(language, "%(done)s of %(total)s genres done.")
        .replace("%(done)s", "0")
        .replace("%(total)s", "14")
    )
    PlaylistJob.objects.filter(pk=job.pk).update(
        status=PlaylistJob.Status.SUCCEEDED,
        finished_at=timezone.now(),
        results=[
            {
                "genre": genre,
                "status": "created",
                "playlistId": f"p{index}",
                "url": f"https://open.spotify.com/playlist/p{index}",
                "tracksAdded": 10,
                "tracksTotal": 10,
                "error": None,
            }
            for index, genre in enumerate(job.genres)
        ],
    )
    expect(progress).to_contain_text(
        js_text(language, "%(done)s of %(total)s genres done.")
        .replace("%(done)s", "14")
        .replace("%(total)s", "14")
    )
    page.evaluate("window.scrollTo(0, 0)")
    assert in_viewport(page, "#selection-bar")
    results_link = bar.locator(".js-bar-results")
    expect(results_link).to_be_visible()
    results_link.click()
    expect(page.locator("#playlist-job")).to_be_in_viewport()


def test_a_big_library_opens_grouped_with_every_family_collapsed(listener_browser: Any) -> None:
    page = genres_page(listener_browser, many_genres_listener())
    expect(page.locator("#genre-group")).to_be_checked()
    families = page.locator("#genre-families details")
    expect(families.first).to_be_visible()
    assert families.count() >= 5
    expect(page.locator("#genre-families details[open]")).to_have_count(0)
    # 300 genres used to make a page many screens long; collapsed, it fits in a few.
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < 4 * 800, height

    # Family headings sit under the list's heading, and the grouped page passes axe.
    assert heading_problems(page) == []
    problems = axe_problems(page)
    assert problems == [], "\n".join(problems)

    # A search opens the families it hits, and only those.
    page.locator("#genre-search").fill("jazz")
    expect(page.locator("#genre-families details[open]")).to_have_count(1)
    expect(page.locator("#genre-families details[open] .genre-name").first).to_contain_text("jazz")


def test_select_all_shown_ticks_exactly_the_genres_the_search_shows(
    listener_browser: Any,
) -> None:
    user = make_listener()
    make_result(user, MANY_GENRES[:40], unclassified=7)
    page = genres_page(listener_browser, user)
    page.locator("#genre-search").fill("metal")
    shown = page.locator(".genre-row:not(.unclassified):visible .genre-name").all_inner_texts()
    assert shown
    assert all("metal" in name for name in shown)
    page.locator("#select-shown").click()
    expect(page.locator(".js-selected-list li")).to_have_text(shown)
    expect(page.locator("#create-playlists")).to_be_enabled()


@pytest.mark.parametrize("language", ["en", "sv"])
def test_the_unclassified_row_hides_when_a_search_matches_nothing(
    listener_browser: Any, language: str
) -> None:
    user = make_listener()
    make_result(user, MANY_GENRES[:20], unclassified=7)
    page = genres_page(listener_browser, user, language=language)
    unclassified = page.locator("#unclassified-row")
    expect(unclassified).to_be_visible()
    page.locator("#genre-search").fill("no genre is called this")
    expect(page.locator(".js-no-match")).to_be_visible()
    expect(unclassified).to_be_hidden()
    page.locator("#genre-search").fill("")
    expect(unclassified).to_be_visible()


@pytest.mark.parametrize("language", ["en", "sv"])
def test_the_last_jobs_results_and_your_playlists_are_there_after_a_reload(
    listener_browser: Any, language: str
) -> None:
    user = make_listener()
    make_result(user, [("swedish pop", 1234), ("indie rock", 60)])
    filled = timezone.now() - timedelta(days=3)
    PlaylistJob.objects.create(
        user=user,
        status=PlaylistJob.Status.SUCCEEDED,
        genres=["swedish pop", "indie rock"],
        started_at=filled - timedelta(minutes=1),
        finished_at=filled,
        results=[
            {
                "genre": genre,
                "status": "created",
                "playlistId": playlist_id,
                "url": f"https://open.spotify.com/playlist/{playlist_id}",
                "tracksAdded": count,
                "tracksTotal": count,
                "error": None,
            }
            for genre, playlist_id, count in [("swedish pop", "p1", 1234), ("indie rock", "p2", 60)]
        ],
    )
    for genre, playlist_id in [("swedish pop", "p1"), ("indie rock", "p2")]:
        GenrePlaylist.objects.create(
            user=user,
            genre=genre,
            playlist_id=playlist_id,
            name=f"{genre} (from Likes)",
            url=f"https://open.spotify.com/playlist/{playlist_id}",
        )
    page = genres_page(listener_browser, user, language=language)
    with translation.override(language):
        big = number_format(1234, force_grouping=True)
        day = date_format(timezone.localtime(filled), "DATE_FORMAT")

    results = page.locator("#playlist-job .js-job-results tr")
    expect(results).to_have_count(2)
    expect(results.nth(0)).to_contain_text(big)
    expect(results.nth(0).locator("a")).to_have_attribute(
        "href", "https://open.spotify.com/playlist/p1"
    )
    page.reload()
    expect(results).to_have_count(2)

    mine = page.locator("#your-playlists tbody tr")
    expect(mine).to_have_count(2)
    pop = page.locator('#your-playlists tr[data-genre="swedish pop"]')
    expect(pop.get_by_role("link", name="swedish pop (from Likes)")).to_have_attribute(
        "href", "https://open.spotify.com/playlist/p1"
    )
    expect(pop).to_contain_text(big)
    expect(pop).to_contain_text(day)


def test_create_is_disabled_while_a_job_runs_and_enabled_when_it_ends(
    listener_browser: Any,
) -> None:
    user = make_listener()
    make_result(user, [("swedish pop", 12), ("indie rock", 6)])
    job = PlaylistJob.objects.create(
        user=user,
        status=PlaylistJob.Status.RUNNING,
        genres=["swedish pop"],
        started_at=timezone.now(),
    )
    page = genres_page(listener_browser, user)
    page.locator('.js-genre[value="indie rock"]').check()
    create = page.locator("#create-playlists")
    expect(create).to_be_disabled()
    expect(page.locator("#create-busy")).to_be_visible()
    PlaylistJob.objects.filter(pk=job.pk).update(
        status=PlaylistJob.Status.SUCCEEDED,
        finished_at=timezone.now(),
        results=[
            {
                "genre": "swedish pop",
                "status": "created",
                "playlistId": "p1",
                "url": "https://open.spotify.com/playlist/p1",
                "tracksAdded": 12,
                "tracksTotal": 12,
                "error": None,
            }
        ],
    )
    expect(create).to_be_enabled()
    expect(page.locator("#create-busy")).to_be_hidden()


# From the top of the page: Tab to the skip link, Enter, Tab to the name field.
MOST_KEY_PRESSES = 8


@pytest.mark.parametrize("size", ["desktop", "mobile"])
def test_the_keyboard_reaches_the_playlist_name_in_a_few_presses(
    listener_browser: Any, size: str
) -> None:
    page = genres_page(listener_browser, many_genres_listener(), size=size)
    presses = 0

    def focused_id() -> str:
        return page.evaluate("document.activeElement && document.activeElement.id")

    while focused_id() != "skip-to-create" and presses < MOST_KEY_PRESSES:
        page.keyboard.press("Tab")
        presses += 1
    expect(page.locator("#skip-to-create")).to_be_focused()
    expect(page.locator("#skip-to-create")).to_be_in_viewport()
    page.keyboard.press("Enter")
    presses += 1
    while focused_id() != "name-pattern" and presses < MOST_KEY_PRESSES:
        page.keyboard.press("Tab")
        presses += 1
    expect(page.locator("#name-pattern")).to_be_focused()
    expect(page.locator("#name-pattern")).to_be_in_viewport()


# axe-core's scrollable-region-focusable (serious): a long selection scrolls inside its list
# (max-height, overflow auto), so the list takes focus to be reachable and scrollable by keyboard.
@pytest.mark.parametrize("size", ["desktop", "mobile"])
def test_a_long_selection_and_a_finished_job_leave_nothing_serious_for_axe(
    listener_browser: Any, size: str
) -> None:
    user = make_listener()
    make_result(user, MANY_GENRES[:60])
    PlaylistJob.objects.create(
        user=user,
        status=PlaylistJob.Status.SUCCEEDED,
        genres=["region000 pop"],
        finished_at=timezone.now(),
        results=[
            {
                "genre": "region000 pop",
                "status": "created",
                "playlistId": "p0",
                "url": "https://open.spotify.com/playlist/p0",
                "tracksAdded": 400,
                "tracksTotal": 400,
                "error": None,
            }
        ],
    )
    page = genres_page(listener_browser, user, size=size)
    expect(page.locator("#playlist-job")).to_be_visible()
    page.locator("#select-shown").click()
    expect(page.locator(".js-selected-list li")).to_have_count(50)
    problems = axe_problems(page)
    assert problems == [], "\n".join(problems)
