"""The script's words come from /i18n/catalog.js, in the page's language, under the CSP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from tests.genres.test_pages import Markup

pytestmark = pytest.mark.django_db


def _catalog(language: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The messages and formats the script gets (Django writes both as JSON), and the text."""
    response = Client().get("/i18n/catalog.js", HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    text = response.content.decode()
    return (
        _object_after("const newcatalog = ", text),
        _object_after("django.formats = ", text),
        text,
    )


def _object_after(marker: str, text: str) -> dict[str, Any]:
    if marker not in text:  # Django leaves out an empty catalog (English: nothing to translate).
        return {}
    value, _ = json.JSONDecoder().raw_decode(text, text.index(marker) + len(marker))
    return value


def test_the_catalog_serves_the_scripts_swedish() -> None:
    messages, formats, text = _catalog("sv")
    assert messages["Scan waiting to start"] == "Skanningen väntar på att starta"
    assert messages["Choose at most %(max)s genres at a time."] == (
        "Välj högst %(max)s genrer åt gången."
    )
    # Plurals: both Swedish forms, and the rule that picks between them.
    assert messages["%(n)s genre"] == ["%(n)s genre", "%(n)s genrer"]
    # Collected from a script that calls the catalog's gettext by a short alias, t("…").
    assert messages["Syncing…"] == "Synkar…"
    assert "const v = (n != 1);" in text
    # Numbers in the script follow Swedish formats too: a no-break space between thousands.
    assert formats["THOUSAND_SEPARATOR"] == "\xa0"
    assert formats["DECIMAL_SEPARATOR"] == ","
    assert formats["DATE_FORMAT"] == "j F Y"


def test_the_english_catalog_has_no_swedish_and_english_formats() -> None:
    messages, formats, _ = _catalog("en")
    assert "Scan waiting to start" not in messages
    assert formats["THOUSAND_SEPARATOR"] == ","


def test_the_catalog_holds_only_swedifys_messages_not_the_admins() -> None:
    messages, _, _ = _catalog("sv")
    # The admin's own djangojs catalog (calendar widgets, "Show"/"Hide") stays out.
    assert "Choose a Date" not in messages
    assert "Scan" in messages


@pytest.mark.parametrize("language", ["en", "sv"])
def test_every_page_loads_the_catalog_before_its_script_from_its_own_origin(
    language: str,
) -> None:
    page = Client().get("/", HTTP_ACCEPT_LANGUAGE=language)
    sources = [attrs.get("src") for tag, attrs in Markup(page.text).tags if tag == "script"]
    assert sources[0] == f"/i18n/catalog.js?lang={language}"
    assert sources[1].startswith("/static/swedify/swedify")
    assert "script-src 'self'" in page["Content-Security-Policy"]


def test_the_catalog_a_page_names_is_its_language_whatever_the_browser_asks() -> None:
    response = Client().get("/i18n/catalog.js?lang=sv", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    assert response["Content-Language"] == "sv"
    assert "Skanningen v\\u00e4ntar p\\u00e5 att starta" in response.content.decode()
    # The URL alone decides the answer, so browsers may keep it for a while.
    assert "public" in response["Cache-Control"]
    assert "max-age=300" in response["Cache-Control"]


def test_the_catalog_without_a_language_follows_the_request_and_is_not_kept() -> None:
    response = Client().get("/i18n/catalog.js", HTTP_ACCEPT_LANGUAGE="sv")
    assert "Skanningen v\\u00e4ntar" in response.content.decode()
    assert "no-cache" in response["Cache-Control"]
    assert "public" not in response["Cache-Control"]


@pytest.mark.parametrize("language", ["de", "", "sv-SE", "<script>"])
def test_a_catalog_of_a_language_swedify_does_not_speak_is_a_clear_400(language: str) -> None:
    response = Client().get("/i18n/catalog.js", {"lang": language})
    assert response.status_code == 400
    assert "choose one of en, sv" in response.text


def test_the_catalog_takes_only_get() -> None:
    assert Client().post("/i18n/catalog.js?lang=sv").status_code == 405
