"""Swedish in a real browser: the language comes from Accept-Language, the header's switch
changes it and is remembered, and numbers and dates, whether the
server or the page script writes them, are Swedish (1 234 with a no-break space)."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import translation
from django.utils.formats import number_format
from playwright.sync_api import expect

from tests.browser.checks import js_text
from tests.genres.test_pages import make_listener, make_result

pytestmark = pytest.mark.browser

HERO = "Your liked songs, sorted by genre"


def swedish(message: str) -> str:
    with translation.override("sv"):
        return translation.gettext(message)


def test_a_swedish_browser_gets_swedish_pages(listener_browser: Any) -> None:
    assert swedish(HERO) != HERO  # the catalog has it, so the check below means something
    page, _ = listener_browser.open("/", language="sv")
    expect(page.locator("html")).to_have_attribute("lang", "sv")
    expect(page.locator("h1")).to_have_text(swedish(HERO))
    page, _ = listener_browser.open("/", language="en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text(HERO)


def test_the_header_switch_changes_the_language_and_remembers_it(listener_browser: Any) -> None:
    """(With JavaScript off the switch works too: test_i18n_switch.py.)"""
    user = make_listener()
    make_result(user, [("swedish pop", 1234)])
    context = listener_browser.context(language="sv", user=user)
    page = context.new_page()
    page.goto(f"{listener_browser.base_url}/genres")
    expect(page.locator("html")).to_have_attribute("lang", "sv")

    page.locator("header").get_by_role("button", name="English").click()
    # Back on the same page, in English, although the browser still asks for Swedish.
    page.wait_for_url(f"{listener_browser.base_url}/genres")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("Your genres")
    assert {c["name"]: c["value"] for c in context.cookies()}.get("django_language") == "en"

    other = context.new_page()
    other.goto(f"{listener_browser.base_url}/")
    expect(other.locator("html")).to_have_attribute("lang", "en")

    other.locator("header").get_by_role("button", name="Svenska").click()
    other.wait_for_url(f"{listener_browser.base_url}/")
    expect(other.locator("html")).to_have_attribute("lang", "sv")
    page.reload()
    expect(page.locator("html")).to_have_attribute("lang", "sv")
    context.close()


def test_numbers_from_the_server_and_from_the_script_are_swedish(listener_browser: Any) -> None:
    user = make_listener()
    make_result(user, [("swedish pop", 1234), ("indie rock", 60)], unclassified=1000)
    page, _ = listener_browser.open("/genres", language="sv", user=user)
    expect(page.locator("body[data-ready=true]")).to_have_count(1)
    with translation.override("sv"):
        total = number_format(2294, force_grouping=True)
    assert total == "2\xa0294"
    # The server's totals line and the genre counts.
    expect(page.locator(".totals")).to_contain_text(total)
    expect(
        page.locator('.genre-row:has(.js-genre[value="swedish pop"]) .genre-count')
    ).to_have_text("1\xa0234")
    # The script's words come from the Swedish catalog, its numbers from Intl.
    assert js_text("sv", "No genre selected") != "No genre selected"
    expect(page.locator("#selection-bar .js-bar-count")).to_have_text(
        js_text("sv", "No genre selected")
    )
    page.locator('.js-genre[value="swedish pop"]').check()
    expect(page.locator(".js-selected-count")).to_have_text(
        js_text(
            "sv",
            "%(n)s genre selected (up to %(max)s).",
            "%(n)s genres selected (up to %(max)s).",
            1,
        )
        % {"n": 1, "max": 50}
    )
