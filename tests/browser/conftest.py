"""Browser tests: pytest-playwright driving Debian's Chromium against pytest-django's live server.

Chromium comes from the system package (never `playwright install`: no downloads at test
time). The listener is signed in by a session cookie made with Django's test client.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Playwright's sync API runs an event loop in this thread; the tests still use the ORM here
# (building rows, updating a scan while the page polls), which Django otherwise refuses.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path("/usr/bin/chromium")
# Browser tests wait this long at most for something to appear (the page polls every 0.2 s).
EXPECT_TIMEOUT_MS = 5_000


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium. "
            "Install it with `apt-get install chromium` (do not run `playwright install`).",
            pytrace=False,
        )
    return {
        "executable_path": str(CHROMIUM),
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-sync",
        ],
    }


@pytest.fixture(autouse=True)
def _fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages poll every 0.2 s so a test sees each change quickly."""
    from genres import pages

    monkeypatch.setattr(pages, "POLL_INTERVAL_MS", 200)


@pytest.fixture
def queued_jobs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Scan and playlist jobs the pages start are recorded instead of sent to a broker; the
    test then plays the worker by updating the rows."""
    from genres import playlists, scans

    queued: list[str] = []
    monkeypatch.setattr(playlists, "_enqueue", lambda job_id: queued.append(str(job_id)))
    monkeypatch.setattr(scans, "_enqueue_scan", lambda scan_id: queued.append(str(scan_id)))
    return queued


class ConsoleWatch:
    """Console errors and CSP violations of a page, collected while the test runs."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        # Parts of console errors a test expects (the browser's report of a 404 page).
        self.expected: list[str] = []

    def attach(self, page: Any) -> None:
        page.on(
            "console",
            lambda message: self.errors.append(message.text) if message.type == "error" else None,
        )
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    @property
    def unexpected(self) -> list[str]:
        return [text for text in self.errors if not any(part in text for part in self.expected)]

    @property
    def csp_violations(self) -> list[str]:
        return [text for text in self.errors if "Content Security Policy" in text]


@pytest.fixture
def listener_page(
    live_server: Any, transactional_db: Any, page: Any, context: Any
) -> Iterator[tuple[Any, Any, ConsoleWatch]]:
    """(page, user, console) with the page's browser signed in as a fresh listener."""
    from django.test import Client

    from tests.genres.test_pages import make_listener

    user = make_listener()
    client = Client()
    client.force_login(user)
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    page.set_default_timeout(EXPECT_TIMEOUT_MS)
    console = ConsoleWatch()
    console.attach(page)
    yield page, user, console
    assert console.errors == [], console.errors


class ListenerBrowser:
    """Opens pages in fresh browser contexts of a given language and size, optionally signed
    in as a listener. Every page of those contexts has its console watched; the contexts are
    closed, and the consoles checked, at the test's end."""

    def __init__(self, browser: Any, base_url: str) -> None:
        self.browser = browser
        self.base_url = base_url
        self.opened: list[tuple[Any, ConsoleWatch]] = []

    def context(
        self,
        *,
        language: str = "en",
        size: str = "desktop",
        user: Any = None,
        error_status: int | None = None,
        **options: Any,
    ) -> Any:
        """A browser context asking for `language`, at `size`; options go to new_context.
        With error_status, the browser's own report of a page answering that status is
        expected and not counted as a console error."""
        from tests.browser.checks import LOCALES, SIZES

        context = self.browser.new_context(
            locale=LOCALES[language], viewport=SIZES[size], accept_downloads=True, **options
        )
        context.set_default_timeout(EXPECT_TIMEOUT_MS)
        console = ConsoleWatch()
        if error_status is not None:
            console.expected.append(f"the server responded with a status of {error_status}")
        context.on("page", console.attach)
        self.opened.append((context, console))
        if user is not None:
            context.add_cookies([session_cookie(user, self.base_url)])
        return context

    def open(
        self,
        path: str,
        *,
        language: str = "en",
        size: str = "desktop",
        user: Any = None,
        error_status: int | None = None,
    ) -> tuple[Any, ConsoleWatch]:
        """(page, its console): a new page at base_url + path (or at path when it is a full
        URL), in a new context (see context())."""
        context = self.context(language=language, size=size, user=user, error_status=error_status)
        page = context.new_page()
        page.goto(path if path.startswith("http") else f"{self.base_url}{path}")
        return page, self.opened[-1][1]

    def close(self) -> list[str]:
        errors = [error for _, console in self.opened for error in console.unexpected]
        for context, _ in self.opened:
            context.close()
        return errors


def session_cookie(user: Any, url: str) -> dict[str, str]:
    """A session cookie of `user` for the browser (signed in without going through Spotify)."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return {"name": "sessionid", "value": client.cookies["sessionid"].value, "url": url}


@pytest.fixture
def listener_browser(
    live_server: Any, transactional_db: Any, browser: Any
) -> Iterator[ListenerBrowser]:
    """Pages in English or Swedish, at desktop or phone size; fails the test on any console
    error or CSP violation of any page it opened."""
    opener = ListenerBrowser(browser, live_server.url)
    yield opener
    errors = opener.close()
    assert errors == [], errors


@pytest.fixture
def site(live_server: Any, transactional_db: Any, settings: Any) -> Iterator[tuple[str, Any]]:
    """(Swedify's URL, the running Spotify sandbox) with Swedify signing in through it."""
    from sandbox.testing import running_sandbox

    # Spotify refuses `localhost` redirect URIs; listeners use the loopback IP.
    url = live_server.url.replace("localhost", "127.0.0.1")
    with running_sandbox() as sandbox:
        settings.SPOTIFY_ACCOUNTS_URL = sandbox.accounts_url
        settings.SPOTIFY_API_URL = sandbox.api_url
        settings.SPOTIFY_REDIRECT_URI = f"{url}/auth/spotify/callback"
        yield url, sandbox
