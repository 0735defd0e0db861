"""Choosing the language: Accept-Language first, then the header's switch, remembered in a
cookie; the switch only ever redirects back into Swedify."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from genres.models import Scan
from tests.genres.test_pages import Markup, make_listener, make_scan, signed_in

pytestmark = pytest.mark.django_db

# Written by the base template, whatever the page: the switch's label.
SWEDISH_MARK = 'aria-label="Språk"'
ENGLISH_MARK = 'aria-label="Language"'


def _switch(client: Client, language: str, next_url: str = "/", **headers: Any) -> Any:
    return client.post("/i18n/setlang", {"language": language, "next": next_url}, **headers)


def test_a_browser_asking_for_swedish_gets_swedish() -> None:
    response = Client().get("/", HTTP_ACCEPT_LANGUAGE="sv-SE,sv;q=0.9,en;q=0.5")
    assert response.status_code == 200
    assert response["Content-Language"] == "sv"
    assert '<html lang="sv">' in response.text
    assert "Accept-Language" in response["Vary"]


def test_a_browser_asking_for_a_language_swedify_does_not_speak_gets_english() -> None:
    response = Client().get("/", HTTP_ACCEPT_LANGUAGE="de-DE,fr;q=0.8")
    assert response["Content-Language"] == "en"
    assert '<html lang="en">' in response.text
    assert SWEDISH_MARK not in response.text


def test_the_switch_remembers_the_choice_in_a_cookie_over_accept_language() -> None:
    client = Client()
    response = _switch(client, "sv", "/genres", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 302
    assert response["Location"] == "/genres"
    cookie = response.cookies[settings.LANGUAGE_COOKIE_NAME]
    assert cookie.value == "sv"
    assert int(cookie["max-age"]) >= 60 * 60 * 24 * 30
    assert cookie["samesite"] == "Lax"

    # The browser keeps asking for English; the remembered choice wins, page after page.
    for _ in range(2):
        page = client.get("/", HTTP_ACCEPT_LANGUAGE="en")
        assert '<html lang="sv">' in page.text
        assert SWEDISH_MARK in page.text

    _switch(client, "en", HTTP_ACCEPT_LANGUAGE="sv")
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="sv")
    assert '<html lang="en">' in page.text
    assert ENGLISH_MARK in page.text


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/",
        "//evil.example/path",
        "/\\evil.example",
        "javascript:alert(1)",
        "http://testserver.evil.example/",
    ],
)
def test_the_switch_never_redirects_off_the_site(next_url: str) -> None:
    response = _switch(Client(), "sv", next_url)
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "sv"


def test_the_switch_goes_back_to_the_page_it_was_used_on_with_its_query() -> None:
    response = _switch(Client(), "sv", "/genres?sort=name")
    assert response["Location"] == "/genres?sort=name"


@pytest.mark.parametrize("language", ["de", "", "sv-XX-<script>", "x" * 500])
def test_a_language_swedify_does_not_speak_is_a_clear_400(language: str) -> None:
    response = _switch(Client(), language)
    assert response.status_code == 400
    assert "choose one of en, sv" in response.text
    assert settings.LANGUAGE_COOKIE_NAME not in response.cookies


def test_the_switch_takes_only_post() -> None:
    response = Client().get("/i18n/setlang", {"language": "sv", "next": "/"})
    assert response.status_code == 405
    assert settings.LANGUAGE_COOKIE_NAME not in response.cookies


def test_the_switch_needs_the_csrf_token() -> None:
    client = Client(enforce_csrf_checks=True)
    assert _switch(client, "sv").status_code == 403
    page = client.get("/")
    token = page.cookies[settings.CSRF_COOKIE_NAME].value
    response = client.post(
        "/i18n/setlang", {"language": "sv", "next": "/", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302


@pytest.mark.parametrize(
    ("language", "other", "other_name"), [("en", "sv", "Svenska"), ("sv", "en", "English")]
)
def test_the_header_offers_the_other_language_as_a_form_that_needs_no_script(
    language: str, other: str, other_name: str
) -> None:
    page = Client().get("/", HTTP_ACCEPT_LANGUAGE=language)
    markup = Markup(page.text)
    forms = [attrs for tag, attrs in markup.tags if tag == "form"]
    switch = [attrs for attrs in forms if attrs.get("action") == "/i18n/setlang"]
    assert len(switch) == 1
    assert switch[0]["method"] == "post"
    buttons = [
        attrs for tag, attrs in markup.tags if tag == "button" and attrs.get("name") == "language"
    ]
    assert [(b["value"], b["lang"]) for b in buttons] == [(other, other)]
    assert f">{other_name}</button>" in page.text
    next_inputs = [attrs for tag, attrs in markup.tags if attrs.get("name") == "next"]
    assert next_inputs[0]["value"] == "/"
    assert any(attrs.get("name") == "csrfmiddlewaretoken" for tag, attrs in markup.tags)


def test_the_next_field_carries_the_current_page_escaped() -> None:
    page = Client().get('/?q="><script>', HTTP_ACCEPT_LANGUAGE="en")
    markup = Markup(page.text)
    next_inputs = [attrs for tag, attrs in markup.tags if attrs.get("name") == "next"]
    assert next_inputs[0]["value"] == "/?q=%22%3E%3Cscript%3E"
    assert '"><script>' not in page.text


def test_a_scan_in_the_api_is_the_same_in_swedish_but_for_its_words_for_display() -> None:
    user = make_listener()
    scan = make_scan(
        user, status=Scan.Status.RUNNING, step=Scan.Step.FETCHING_TRACKS, finished_at=None
    )
    client = signed_in(user)
    english = client.get(f"/api/scans/{scan.id}", HTTP_ACCEPT_LANGUAGE="en").json()
    swedish = client.get(f"/api/scans/{scan.id}", HTTP_ACCEPT_LANGUAGE="sv").json()
    assert english["stepLabel"] == "Reading your songs"
    assert swedish["stepLabel"] == "Läser dina låtar"
    assert swedish["status"] == english["status"] == "running"
    assert swedish["step"] == english["step"] == "fetching_tracks"
    assert swedish.keys() == english.keys()
    # etaSeconds follows the clock between the two requests; stepLabel is the words.
    for key in ("stepLabel", "etaSeconds"):
        del english[key], swedish[key]
    assert swedish == english


def test_the_api_stays_language_neutral() -> None:
    """The JSON API's keys and error codes are the contract's, whatever the browser asks."""
    english = Client().get("/api/genres", HTTP_ACCEPT_LANGUAGE="en")
    swedish = Client().get("/api/genres", HTTP_ACCEPT_LANGUAGE="sv")
    assert english.status_code == swedish.status_code == 401
    assert english.json() == swedish.json()


def test_the_operators_admin_stays_english_for_a_swedish_browser() -> None:
    client = Client()
    _switch(client, "sv")
    login = client.get("/admin/login/", HTTP_ACCEPT_LANGUAGE="sv")
    assert login.status_code == 200
    assert login["Content-Language"] == "en"
    assert '<html lang="en"' in login.text
    assert "Log in" in login.text
    assert "Logga in" not in login.text
    # The same browser still gets Swedish on the listener pages.
    assert SWEDISH_MARK in client.get("/", HTTP_ACCEPT_LANGUAGE="sv").text
