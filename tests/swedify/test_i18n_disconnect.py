"""Leaving Swedify in English and in Swedish: the confirmation page (with its date in the
language's format) and the notice after the data is gone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import Client

from genres.models import SpotifyAccount
from tests.genres.test_pages import make_listener, signed_in

pytestmark = pytest.mark.django_db

PAGE = {
    "en": {
        "title": "<title>Disconnect Spotify · Swedify</title>",
        "heading": "Disconnect Spotify and delete my data",
        "since": "signed in as Listener Listener and have used Swedify since March 14, 2026",
        "button": "Disconnect and delete my data",
        "keep": "Keep my data",
        "nav": "Your genres",
    },
    "sv": {
        "title": "<title>Koppla från Spotify · Swedify</title>",
        "heading": "Koppla från Spotify och radera mina data",
        "since": "Du är inloggad som Listener Listener och har använt Swedify sedan 14 mars 2026",
        "button": "Koppla från och radera mina data",
        "keep": "Behåll mina data",
        "nav": "Dina genrer",
    },
}
DONE = {
    "en": "Swedify disconnected from Spotify and deleted your data.",
    "sv": "Swedify har kopplats från Spotify och raderat dina data.",
}


def _listener_since_march() -> Client:
    user = make_listener()
    SpotifyAccount.objects.filter(user=user).update(
        created_at=datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
    )
    return signed_in(user)


@pytest.mark.parametrize("language", ["en", "sv"])
def test_the_disconnect_page_is_wholly_in_the_listeners_language(language: str) -> None:
    page = _listener_since_march().get("/auth/disconnect", HTTP_ACCEPT_LANGUAGE=language)
    assert page.status_code == 200
    assert f'<html lang="{language}">' in page.text
    for text in PAGE[language].values():
        assert text in page.text
    other = "sv" if language == "en" else "en"
    for key in ("heading", "button", "keep", "nav"):
        assert PAGE[other][key] not in page.text


@pytest.mark.parametrize("language", ["en", "sv"])
def test_the_notice_after_leaving_is_in_the_language_the_listener_left_in(language: str) -> None:
    client = _listener_since_march()
    client.post("/i18n/setlang", {"language": language, "next": "/"})
    response = client.post("/auth/disconnect", follow=True, HTTP_ACCEPT_LANGUAGE="de")
    assert response.redirect_chain == [("/", 302)]
    assert DONE[language] in response.text
    assert f'<html lang="{language}">' in response.text
