"""Every listener page, in English and Swedish, on a laptop and on a phone: no serious or
critical axe-core violation, headings in order, the header on one line on the phone, no
console error or CSP violation; and a screenshot of each in var/screenshots/.

One test per page and language loads the page once and checks it at both sizes (resizing the
viewport), so the whole matrix stays quick.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from genres.models import GenrePlaylist, PlaylistJob, Scan
from tests.browser.checks import (
    SIZES,
    axe_problems,
    broken_words,
    header_problems,
    heading_problems,
    screenshot,
)
from tests.browser.urls_failing import FAILING_PATH
from tests.genres.test_pages import make_listener, make_result, make_scan

pytestmark = pytest.mark.browser

GENRES = [
    ("swedish pop", 1234),
    ("indie rock", 60),
    ("swedish hip hop", 40),
    ("progressive death metal", 12),
    ("deep house", 3),
]
LONG_GENRE = "neo-psychedelic scandinavian singer-songwriter"


def _signed_out() -> None:
    return None


def _signed_in() -> Any:
    user = make_listener()
    make_result(user, GENRES, unclassified=5, age=timedelta(minutes=12))
    return user


def _scanning() -> Any:
    user = _signed_in()
    make_scan(
        user,
        status=Scan.Status.RUNNING,
        step=Scan.Step.FETCHING_ARTISTS,
        tracks_total=10000,
        tracks_found=10000,
        artists_to_fetch=3100,
        artists_fetched=800,
        finished_at=None,
    )
    return user


def _with_playlists() -> Any:
    """A listener whose last playlist job finished, so the results table is on the page."""
    user = _signed_in()
    now = timezone.now()
    PlaylistJob.objects.create(
        user=user,
        status=PlaylistJob.Status.PARTIAL,
        genres=["swedish pop", LONG_GENRE, "indie rock"],
        name_pattern="{genre} (from Likes)",
        started_at=now - timedelta(minutes=2),
        finished_at=now - timedelta(minutes=1),
        results=[
            {
                "genre": "swedish pop",
                "status": "created",
                "playlistId": "p1",
                "url": "https://open.spotify.com/playlist/p1",
                "tracksAdded": 1234,
                "tracksTotal": 1234,
                "error": None,
            },
            {
                "genre": LONG_GENRE,
                "status": "failed",
                "playlistId": None,
                "url": None,
                "tracksAdded": 40,
                "tracksTotal": 60,
                "error": "Spotify answered 503 (Service Unavailable)",
            },
            {
                "genre": "indie rock",
                "status": "skipped",
                "playlistId": None,
                "url": None,
                "tracksAdded": 0,
                "tracksTotal": 60,
                "error": None,
                "reason": "you already have a playlist named 'indie rock (from Likes)'",
            },
        ],
    )
    GenrePlaylist.objects.create(
        user=user,
        genre="swedish pop",
        playlist_id="p1",
        name="swedish pop (from Likes)",
        url="https://open.spotify.com/playlist/p1",
    )
    GenrePlaylist.objects.create(
        user=user,
        genre=LONG_GENRE,
        playlist_id="p2",
        name=f"{LONG_GENRE} (from Likes)",
        url="https://open.spotify.com/playlist/p2",
    )
    return user


# name -> (path, who is signed in, the HTTP status the page answers with)
PAGES: dict[str, tuple[str, Callable[[], Any], int]] = {
    "home-signed-out": ("/", _signed_out, 200),
    "sign-in-refused": ("/?error=spotify_denied", _signed_out, 200),
    "home-signed-in": ("/", _signed_in, 200),
    "home-scanning": ("/", _scanning, 200),
    "genres": ("/genres", _with_playlists, 200),
    "disconnect": ("/auth/disconnect", _signed_in, 200),
    "not-found": ("/no-such-page", _signed_out, 404),
    "server-error": (FAILING_PATH, _signed_out, 500),
}


def check_page_at_both_sizes(page: Any, name: str, *, header: bool = True) -> None:
    """Runs every check at each size and screenshots the page; fails with all that is wrong.
    Without header, the page is not Swedify's (the sandbox's) and has no site header."""
    problems: list[str] = []
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        # Let layout settle after the resize before measuring.
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(null)))")
        found = [f"axe: {line}" for line in axe_problems(page)]
        found += [f"headings: {line}" for line in heading_problems(page)]
        if header and size == "mobile":
            found += [f"header: {line}" for line in header_problems(page)]
        screenshot(page, f"{name}-{size}")
        problems += [f"[{size}] {line}" for line in found]
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("language", ["en", "sv"])
@pytest.mark.parametrize("name", list(PAGES))
def test_each_listener_page_passes_axe_and_is_photographed(
    listener_browser: Any, name: str, language: str, settings: Any
) -> None:
    path, make_user, status = PAGES[name]
    if path == FAILING_PATH:
        settings.ROOT_URLCONF = "tests.browser.urls_failing"
    context = listener_browser.context(
        language=language, user=make_user(), error_status=status if status >= 400 else None
    )
    page = context.new_page()
    response = page.goto(f"{listener_browser.base_url}{path}")
    assert response.status == status
    if status == 200:
        expect(page.locator("body[data-ready=true]")).to_have_count(1)
    expect(page.locator("html")).to_have_attribute("lang", language)
    check_page_at_both_sizes(page, f"{name}-{language}")


def test_results_table_breaks_no_word_in_the_middle_on_a_phone(listener_browser: Any) -> None:
    user = _with_playlists()
    page, _ = listener_browser.open("/genres", size="mobile", user=user)
    expect(page.locator("body[data-ready=true]")).to_have_count(1)
    # The last job's results and "Your playlists", both with a long genre name.
    expect(page.locator("#playlist-job table.results")).to_contain_text("Spotify answered 503")
    expect(page.locator("#your-playlists table.results")).to_contain_text(LONG_GENRE)
    assert broken_words(page, "table.results") == []


@pytest.mark.integration
def test_the_sandbox_sign_in_pages_pass_axe_and_are_photographed(
    listener_browser: Any, site: Any
) -> None:
    """The consent page a listener passes through when signing in (the bundled sandbox stands
    in for Spotify's) and the sandbox's own user list; both are English only."""
    url, sandbox = site
    page, _ = listener_browser.open(f"{url}/")
    page.locator("#sign-in").click()
    expect(page.get_by_role("button", name="Approve")).to_be_visible()
    check_page_at_both_sizes(page, "sandbox-consent-en", header=False)
    page.goto(f"{sandbox.url}/sandbox/")
    check_page_at_both_sizes(page, "sandbox-users-en", header=False)


# Elements that would still move: a transition or an animation, or smooth scrolling.
_MOTION_JS = """() => Array.from(document.querySelectorAll('*')).filter(el => {
  const style = getComputedStyle(el);
  const moving = s => s.split(',').some(part => parseFloat(part) > 0);
  return moving(style.transitionDuration) || style.animationName !== 'none'
    || style.scrollBehavior === 'smooth';
}).map(el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : ''))"""


def test_a_listener_who_asks_for_less_motion_gets_none(listener_browser: Any) -> None:
    user = _with_playlists()
    moving = {}
    for preference in ("no-preference", "reduce"):
        context = listener_browser.context(user=user, reduced_motion=preference)
        page = context.new_page()
        page.goto(f"{listener_browser.base_url}/genres")
        expect(page.locator("body[data-ready=true]")).to_have_count(1)
        moving[preference] = page.evaluate(_MOTION_JS)
    # The jump to the Create form scrolls smoothly for others (so the check can see motion).
    assert "html" in moving["no-preference"]
    assert moving["reduce"] == []
