"""The language switch and the script's Swedish in a real browser: the switch is a plain form
(it works with JavaScript off), the choice outlives the browser's own language, and the
catalog loads under the strict CSP."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.checks import LOCALES
from tests.browser.conftest import EXPECT_TIMEOUT_MS, session_cookie
from tests.genres.test_pages import make_listener, make_result

pytestmark = pytest.mark.browser

GENRES = [("dansband", 1_200), ("schlager", 40)]


def test_the_switch_works_without_javascript_and_is_remembered(listener_browser: Any) -> None:
    user = make_listener()
    make_result(user, GENRES)
    context = listener_browser.browser.new_context(locale=LOCALES["en"], java_script_enabled=False)
    try:
        context.set_default_timeout(EXPECT_TIMEOUT_MS)
        context.add_cookies([session_cookie(user, listener_browser.base_url)])
        page = context.new_page()
        page.goto(f"{listener_browser.base_url}/genres?from=switch")
        expect(page.locator("html")).to_have_attribute("lang", "en")
        expect(page.locator("h1")).to_have_text("Your genres")

        page.get_by_role("button", name="Svenska").click()
        # Back on the same page, query included, now in Swedish.
        page.wait_for_url(f"{listener_browser.base_url}/genres?from=switch")
        expect(page.locator("html")).to_have_attribute("lang", "sv")
        expect(page.locator("h1")).to_have_text("Dina genrer")
        expect(page.locator(".genre-count").first).to_have_text("1\xa0200")
        cookies = {cookie["name"]: cookie for cookie in context.cookies()}
        assert cookies["django_language"]["value"] == "sv"
        assert cookies["django_language"]["httpOnly"] is True

        # The browser still asks for English; the remembered choice wins on the next visit.
        again = context.new_page()
        again.goto(f"{listener_browser.base_url}/")
        expect(again.locator("html")).to_have_attribute("lang", "sv")
        again.get_by_role("button", name="English").click()
        expect(again.locator("html")).to_have_attribute("lang", "en")
        expect(again.get_by_role("button", name="Svenska")).to_be_visible()
    finally:
        context.close()


def test_a_swedish_browser_gets_the_scripts_words_and_numbers_in_swedish(
    listener_browser: Any,
) -> None:
    user = make_listener()
    make_result(user, GENRES)
    page, console = listener_browser.open("/genres", language="sv", user=user)
    expect(page.locator("body[data-ready=true]")).to_have_count(1)
    words = page.evaluate(
        "() => [gettext('Scan failed'), ngettext('%(n)s genre', '%(n)s genres', 2),"
        " get_format('THOUSAND_SEPARATOR'), new Intl.NumberFormat("
        "document.documentElement.lang).format(1200)]"
    )
    assert words == ["Skanningen misslyckades", "%(n)s genrer", "\xa0", "1\xa0200"]
    assert console.csp_violations == []
