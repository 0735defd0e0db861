"""Errors that say what happened and what to do, in English and Swedish: a signed-out visit
to the genres page, and the product's own 404 and 500 pages (never Django's)."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import translation
from playwright.sync_api import expect

from tests.browser.urls_failing import FAILING_PATH

pytestmark = pytest.mark.browser


def words(language: str, message: Any) -> str:
    with translation.override(language):
        return str(translation.gettext(message) if isinstance(message, str) else message)


@pytest.mark.parametrize("language", ["en", "sv"])
def test_a_signed_out_visit_to_the_genres_page_says_why_it_landed_home(
    listener_browser: Any, language: str
) -> None:
    from genres.pages import NOTICES

    page, _ = listener_browser.open("/genres", language=language)
    assert page.url.split("?")[0] == f"{listener_browser.base_url}/"
    notice = page.locator("#page-notice")
    expect(notice).to_be_visible()
    expect(notice).to_have_text(words(language, NOTICES["sign_in_required"]))
    expect(page.locator("#sign-in")).to_be_visible()


@pytest.mark.parametrize("language", ["en", "sv"])
def test_a_missing_page_is_swedifys_own_with_a_way_home(
    listener_browser: Any, language: str
) -> None:
    page, _ = listener_browser.open("/no/such/page", language=language, error_status=404)
    expect(page.locator("html")).to_have_attribute("lang", language)
    expect(page.locator("h1")).to_have_text(words(language, "This page does not exist"))
    expect(page.locator("main a[href='/']")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("Not Found")
    page.locator("main a[href='/']").click()
    expect(page.locator("#sign-in")).to_be_visible()


@pytest.mark.parametrize("language", ["en", "sv"])
def test_a_server_error_is_swedifys_own_page_in_the_listeners_language(
    listener_browser: Any, language: str, settings: Any
) -> None:
    settings.ROOT_URLCONF = "tests.browser.urls_failing"
    page, _ = listener_browser.open(FAILING_PATH, language=language, error_status=500)
    expect(page.locator("html")).to_have_attribute("lang", language)
    expect(page.locator("h1")).to_have_text(
        words(language, "Something went wrong on Swedify's side")
    )
    expect(page.locator("body")).not_to_contain_text("Server Error (500)")
    expect(page.locator("main a[href='/']")).to_be_visible()
