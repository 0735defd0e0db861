"""The listener pages in English and in Swedish: the words, the numbers ("1 234" with a
no-break space) and the dates ("14 mars 2026"), and no English left on a Swedish page."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import Client, RequestFactory
from django.utils import translation
from django.views.defaults import server_error

from genres.models import GenrePlaylist
from tests.genres.test_pages import Markup, make_listener, make_result, signed_in

pytestmark = pytest.mark.django_db

LANGUAGES = ["en", "sv"]
NBSP = "\xa0"
# Genre names are the listener's data and are shown as Spotify writes them: none of these
# contain a word the English check below looks for.
GENRES = [("dansband", 1_000), ("schlager", 234), ("visor", 3)]
# Words of English that Swedish never uses: one of them in the visible text of a Swedish page
# is a string nobody wrapped for translation (or a translation nobody wrote).
ENGLISH = re.compile(
    r"\b(the|your|you|and|with|of|songs?|playlists?|sign|scan|scanning|artists?|library|"
    r"create|search|liked|disconnect|delete|refresh|download|select|tick|try|again)\b",
    re.IGNORECASE,
)


def _visible_text(html: str) -> str:
    """Text a reader meets: text nodes plus labels, placeholders and titles on elements."""
    markup = Markup(html)
    parts = list(markup.text_parts)
    for _, attrs in markup.tags:
        parts += [attrs.get(name) or "" for name in ("aria-label", "placeholder", "title", "alt")]
    return " ".join(parts)


def _english_words(html: str) -> list[str]:
    return sorted({match.group(0) for match in ENGLISH.finditer(_visible_text(html))})


def _page(client: Client, path: str, language: str) -> Any:
    response = client.get(path, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    assert f'<html lang="{language}">' in response.text
    return response


def _listener_with_a_result() -> Client:
    user = make_listener()
    make_result(user, GENRES)
    playlist = GenrePlaylist.objects.create(
        user=user,
        genre="dansband",
        playlist_id="37i9dQZF1DX0000000000",
        name="dansband (Swedify)",
        url="https://open.spotify.com/playlist/37i9dQZF1DX0000000000",
    )
    GenrePlaylist.objects.filter(pk=playlist.pk).update(
        updated_at=datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
    )
    return signed_in(user)


HOME_SIGNED_OUT = {
    "en": ["Your liked songs, sorted by genre", "Sign in with Spotify"],
    "sv": ["Dina gillade låtar, sorterade efter genre", "Logga in med Spotify"],
}
HOME_SIGNED_IN = {
    "en": ["Your library", "1,237", "5 minutes ago", "Scan again", "Sign out"],
    "sv": [
        "Ditt bibliotek",
        f"1{NBSP}237",
        "för 5 minuter sedan",
        "Skanna igen",
        "Logga ut",
    ],
}
GENRES_PAGE = {
    "en": ["Your genres", "Create playlists", "1,000", "Your playlists", "March 14, 2026"],
    "sv": [
        "Dina genrer",
        "Skapa spellistor",
        f"1{NBSP}000",
        "Dina spellistor",
        "14 mars 2026",
    ],
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_home_page_for_a_visitor_is_in_their_language(language: str) -> None:
    page = _page(Client(), "/", language)
    for text in HOME_SIGNED_OUT[language]:
        assert text in page.text


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_home_page_of_a_listener_shows_words_and_numbers_in_their_language(
    language: str,
) -> None:
    page = _page(_listener_with_a_result(), "/", language)
    for text in HOME_SIGNED_IN[language]:
        assert text in page.text


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_genres_page_shows_words_numbers_and_dates_in_the_listeners_language(
    language: str,
) -> None:
    page = _page(_listener_with_a_result(), "/genres", language)
    for text in GENRES_PAGE[language]:
        assert text in page.text
    # Machine-read values stay machine-readable in every language.
    assert 'data-count="1000"' in page.text
    assert 'datetime="2026-03-14T12:00:00+00:00"' in page.text


@pytest.mark.parametrize(
    ("language", "suggested"),
    [("en", "{genre} (from Likes)"), ("sv", "{genre} (från Gillade låtar)")],
)
def test_the_playlist_name_is_suggested_in_the_listeners_language(
    language: str, suggested: str
) -> None:
    from genres.playlists import DEFAULT_NAME_PATTERN

    page = _page(_listener_with_a_result(), "/genres", language)
    assert f'id="name-pattern" name="namePattern" value="{suggested}"' in page.text
    # The API's default (and auto-sync's) stays the contract's, whatever the language.
    assert DEFAULT_NAME_PATTERN == "{genre} (from Likes)"


@pytest.mark.parametrize(
    ("who", "path"),
    [
        ("visitor", "/"),
        ("listener", "/"),
        ("listener", "/genres"),
        ("listener", "/auth/disconnect"),
    ],
)
def test_a_swedish_page_has_no_english_left(who: str, path: str) -> None:
    client = _listener_with_a_result() if who == "listener" else Client()
    english = _page(client, path, "en")
    swedish = _page(client, path, "sv")
    # The check itself works: the same page in English is full of such words.
    assert len(_english_words(english.text)) >= 5
    assert _english_words(swedish.text) == []


NOT_FOUND = {"en": "This page does not exist", "sv": "Den här sidan finns inte"}
SERVER_ERROR = {"en": "Go to the home page", "sv": "Till startsidan"}


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_not_found_page_is_in_the_visitors_language(language: str) -> None:
    response = Client().get("/no-such-page", HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 404
    assert f'<html lang="{language}">' in response.text
    assert NOT_FOUND[language] in response.text
    if language == "sv":
        assert _english_words(response.text) == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_server_error_page_is_in_the_language_of_the_failed_request(language: str) -> None:
    """Django renders it without a request or context processors: the language still shows,
    and the switch (which needs a CSRF token) is left out rather than broken."""
    request = RequestFactory().get("/")
    with translation.override(language):
        response = server_error(request)
    html = response.content.decode()
    assert response.status_code == 500
    assert f'<html lang="{language}">' in html
    assert SERVER_ERROR[language] in html
    assert "/i18n/setlang" not in html
    assert f"/i18n/catalog.js?lang={language}" in html
