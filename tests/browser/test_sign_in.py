"""Signing in the way a listener does: a click on "Sign in with Spotify", the consent page of
the Spotify sandbox, Approve or Deny, and back on Swedify, in words that say what happened
(every page's console is watched: an error or CSP violation fails the test)."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import translation
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def sign_in_as(page: Any, url: str, sandbox_user: str, decision: str = "Approve") -> None:
    """From Swedify's home page through the sandbox's consent page, as `sandbox_user`."""
    page.goto(url)
    page.locator("#sign-in").click()
    page.locator("#sandbox_user").select_option(sandbox_user)
    page.get_by_role("button", name=decision).click()


@pytest.mark.parametrize("language", ["en", "sv"])
def test_approving_on_the_consent_page_signs_the_listener_in(
    listener_browser: Any, site: Any, language: str
) -> None:
    url, _ = site
    page, _ = listener_browser.open(f"{url}/", language=language)
    sign_in_as(page, f"{url}/", "listener")
    page.wait_for_url(f"{url}/")
    with translation.override(language):
        sign_out = translation.gettext("Sign out")
    expect(page.locator("header").get_by_role("button", name=sign_out)).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", language)
    assert page.context.request.get(f"{url}/session").json()["authenticated"] is True


def test_denying_on_the_consent_page_comes_back_signed_out(
    listener_browser: Any, site: Any
) -> None:
    url, _ = site
    page, _ = listener_browser.open(f"{url}/")
    sign_in_as(page, f"{url}/", "listener", decision="Deny")
    page.wait_for_url(f"{url}/?error=spotify_denied")
    expect(page.locator("#sign-in")).to_be_visible()
    assert page.context.request.get(f"{url}/session").json() == {"authenticated": False}


@pytest.mark.parametrize("language", ["en", "sv"])
def test_denying_comes_back_with_words_that_match_the_consent_page(
    listener_browser: Any, site: Any, language: str
) -> None:
    from genres.pages import SIGN_IN_ERRORS

    url, _ = site
    page, _ = listener_browser.open(f"{url}/", language=language)
    sign_in_as(page, f"{url}/", "listener", decision="Deny")
    page.wait_for_url(f"{url}/?error=spotify_denied")
    notice = page.locator("#sign-in-error")
    with translation.override(language):
        expected = str(SIGN_IN_ERRORS["spotify_denied"])
    expect(notice).to_contain_text(expected)
    # The consent page's button is "Approve": the words must not send anyone to "Agree".
    expect(notice).not_to_contain_text("Agree")


@pytest.mark.parametrize("language", ["en", "sv"])
def test_a_listener_missing_from_the_allow_list_is_told_who_can_fix_it(
    listener_browser: Any, site: Any, language: str
) -> None:
    from genres.pages import SIGN_IN_ERRORS

    url, _ = site
    page, _ = listener_browser.open(f"{url}/", language=language)
    # The sandbox's "outsider" is a real account the app's owner has not allow-listed.
    sign_in_as(page, f"{url}/", "outsider")
    page.wait_for_url(f"{url}/?error=spotify_not_allowlisted")
    notice = page.locator("#sign-in-error")
    with translation.override(language):
        expected = str(SIGN_IN_ERRORS["spotify_not_allowlisted"])
    expect(notice).to_contain_text(expected)
    # Trying again cannot help until the owner adds the account: no "Try again" button.
    expect(notice.locator("a, button")).to_have_count(0)
    assert page.context.request.get(f"{url}/session").json() == {"authenticated": False}
