"""Errors that say what is wrong and what to do: a sign-in Spotify refuses, a signed-out visit,
the product's own 404 and 500 pages, and the words around creating playlists."""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory
from django.views.defaults import server_error

from genres.pages import SIGN_IN_ERRORS
from sandbox import pages as sandbox_pages
from tests.genres.test_pages import (
    Markup,
    assert_csp_clean,
    make_listener,
    make_result,
    signed_in,
)

pytestmark = pytest.mark.django_db


def test_a_listener_spotify_does_not_serve_is_told_why_and_who_can_fix_it(client: Client) -> None:
    markup = assert_csp_clean(client.get("/", {"error": "spotify_not_allowlisted"}))
    assert "allow-list" in markup.text
    assert "Development Mode" in markup.text
    assert "Ask the person who runs this Swedify" in markup.text
    # Trying again cannot help until the owner acts, so no "Try again" button is offered.
    assert "Try again" not in markup.text
    assert markup.find("div", id="sign-in-error")


def test_the_denied_message_names_no_button_the_consent_page_lacks() -> None:
    consent = sandbox_pages.authorize_page(
        {"client_id": "c", "redirect_uri": "http://127.0.0.1:1/cb"}, [], "listener", []
    )
    words = str(SIGN_IN_ERRORS["spotify_denied"])
    assert "Agree" not in words or ">Agree<" in consent
    assert "Approve" not in words or ">Approve<" in consent


def test_a_signed_out_visit_to_the_genres_page_is_told_to_sign_in(client: Client) -> None:
    response = client.get("/genres", follow=True)
    markup = assert_csp_clean(response)
    notice = markup.find("div", id="page-notice")
    assert notice
    assert notice[0]["role"] == "status"
    assert "Sign in with Spotify to see your genres" in markup.text
    assert markup.find("a", href="/auth/spotify")


def test_an_unknown_notice_key_shows_nothing(client: Client) -> None:
    markup = assert_csp_clean(client.get("/", {"notice": "<b>hello</b>"}))
    assert not markup.find("div", id="page-notice")
    assert "hello" not in markup.text


def test_a_signed_in_listener_sees_no_sign_in_notice() -> None:
    user = make_listener()
    markup = assert_csp_clean(signed_in(user).get("/", {"notice": "sign_in_required"}))
    assert not markup.find("div", id="page-notice")


def test_an_unknown_page_is_the_products_own_404(client: Client, settings) -> None:
    settings.DEBUG = False
    response = client.get("/no-such-page")
    assert response.status_code == 404
    markup = assert_csp_clean(response)
    assert "This page does not exist" in markup.text
    assert markup.find("a", href="/")
    assert "Page not found at" not in markup.text  # Django's own wording


def test_a_server_error_is_the_products_own_500_without_a_database() -> None:
    request = RequestFactory().get("/genres")
    with pytest.MonkeyPatch.context() as patch:
        # The error may be the database: the page must render without touching it.
        patch.setattr(
            "django.db.backends.utils.CursorWrapper.execute",
            lambda *args, **kwargs: pytest.fail("the 500 page queried the database"),
        )
        response = server_error(request)
    assert response.status_code == 500
    markup = Markup(response.content.decode())
    assert "Something went wrong on Swedify's side" in markup.text
    assert markup.find("a", href="/")
    assert markup.find("main")


def test_the_skip_duplicates_option_explains_itself() -> None:
    user = make_listener()
    make_result(user, [("pop", 3)])
    markup = assert_csp_clean(signed_in(user).get("/genres"))
    box = markup.find("input", id="skip-duplicates")[0]
    assert box["aria-describedby"] == "skip-duplicates-hint"
    assert "leaves that genre out instead of making a second playlist" in markup.text
    assert "Untick it to have Swedify make its own playlist beside yours" in markup.text
