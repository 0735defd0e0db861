"""Signing in the way a listener does: a click on "Sign in with Spotify", the consent page of
the Spotify sandbox, Approve or Deny, and back on Swedify."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from sandbox.testing import RunningSandbox, running_sandbox
from tests.browser.conftest import EXPECT_TIMEOUT_MS, ConsoleWatch

pytestmark = [pytest.mark.browser, pytest.mark.integration]


@pytest.fixture
def site(
    live_server: Any, transactional_db: Any, settings: Any
) -> Iterator[tuple[str, RunningSandbox]]:
    # Spotify refuses `localhost` redirect URIs; listeners use the loopback IP.
    url = live_server.url.replace("localhost", "127.0.0.1")
    with running_sandbox() as sandbox:
        settings.SPOTIFY_ACCOUNTS_URL = sandbox.accounts_url
        settings.SPOTIFY_API_URL = sandbox.api_url
        settings.SPOTIFY_REDIRECT_URI = f"{url}/auth/spotify/callback"
        yield url, sandbox


def start_sign_in(page: Any, url: str) -> ConsoleWatch:
    console = ConsoleWatch()
    console.attach(page)
    page.set_default_timeout(EXPECT_TIMEOUT_MS)
    page.goto(url)
    page.get_by_role("link", name="Sign in with Spotify").first.click()
    expect(page.get_by_role("button", name="Approve")).to_be_visible()
    return console


def test_approving_on_the_consent_page_signs_the_listener_in(page: Any, site) -> None:
    url, _ = site
    console = start_sign_in(page, url)
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(f"{url}/")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    assert page.context.request.get(f"{url}/session").json()["authenticated"] is True
    assert console.csp_violations == []


def test_denying_on_the_consent_page_comes_back_with_the_reason(page: Any, site) -> None:
    url, _ = site
    start_sign_in(page, url)
    page.get_by_role("button", name="Deny").click()
    page.wait_for_url(f"{url}/?error=spotify_denied")
    expect(page.get_by_role("link", name="Sign in with Spotify").first).to_be_visible()
    assert page.context.request.get(f"{url}/session").json() == {"authenticated": False}
