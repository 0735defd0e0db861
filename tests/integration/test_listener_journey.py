"""The whole listener journey over real HTTP, as a client sees it: sign in through the
sandbox, scan with a real Celery worker, read the genres, make playlists, run the same request
again, sign out. Django serves on a live port; the worker is its own process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import requests

from sandbox.testing import RunningSandbox
from tests.integration.conftest import JOB_TIMEOUT, LISTENER, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def site(live_server: Any, settings: Any, spotify_at_sandbox: RunningSandbox) -> str:
    # Spotify refuses `localhost` redirect URIs; the loopback IP is what listeners use.
    url = live_server.url.replace("localhost", "127.0.0.1")
    settings.SPOTIFY_REDIRECT_URI = f"{url}/auth/spotify/callback"
    return url


def sign_in(browser: requests.Session, site: str, sandbox: RunningSandbox) -> None:
    start = browser.get(f"{site}/auth/spotify", allow_redirects=False)
    assert start.status_code == 302
    authorize = urlsplit(start.headers["Location"])
    assert authorize.geturl().startswith(f"{sandbox.accounts_url}/authorize")
    query = [
        *parse_qsl(authorize.query),
        ("sandbox_user", LISTENER["id"]),
        ("sandbox_decision", "approve"),
    ]
    consent = browser.get(
        urlunsplit(authorize._replace(query=urlencode(query))), allow_redirects=False
    )
    assert consent.status_code == 302
    callback = browser.get(consent.headers["Location"], allow_redirects=False)
    assert callback.status_code == 302
    assert callback.headers["Location"] == "/"


def api(browser: requests.Session, site: str) -> Callable[..., requests.Response]:
    token = browser.get(f"{site}/session").json()["csrfToken"]

    def call(method: str, path: str, body: Any = None) -> requests.Response:
        return browser.request(
            method, f"{site}{path}", json=body, headers={"X-CSRFToken": token}, timeout=10
        )

    return call


def finished(call: Callable[..., requests.Response], path: str, done: set[str]) -> Any:
    body = call("GET", path).json()
    return body if body["status"] in done else None


def test_a_listener_signs_in_scans_makes_playlists_and_signs_out(
    site: str, spotify_at_sandbox: RunningSandbox, start_worker: Callable[[], Any]
) -> None:
    sandbox = spotify_at_sandbox
    start_worker()
    browser = requests.Session()

    sign_in(browser, site, sandbox)
    session = browser.get(f"{site}/session").json()
    assert session["authenticated"] is True
    assert session["user"]["id"] == LISTENER["id"]
    call = api(browser, site)

    started = call("POST", "/api/scans", {"sources": ["liked"]})
    assert started.status_code == 202
    scan = wait_for(
        lambda: finished(call, f"/api/scans/{started.json()['id']}", {"succeeded", "failed"}),
        JOB_TIMEOUT,
        "the scan",
    )
    assert scan["status"] == "succeeded", scan

    genres = call("GET", "/api/genres").json()
    truth = sandbox.truth(LISTENER["id"])
    assert {g["name"]: sorted(g["trackIds"]) for g in genres["genres"]} == truth["genres"]
    chosen = [genre["name"] for genre in genres["genres"][:3]]

    created = call("POST", "/api/playlists", {"genres": chosen})
    assert created.status_code == 202
    job = wait_for(
        lambda: finished(
            call, f"/api/playlist-jobs/{created.json()['id']}", {"succeeded", "partial", "failed"}
        ),
        JOB_TIMEOUT,
        "the playlist job",
    )
    assert job["status"] == "succeeded", job
    assert [result["status"] for result in job["results"]] == ["created"] * 3
    on_spotify = {p["name"]: p for p in sandbox.playlists(LISTENER["id"])}
    for result in job["results"]:
        playlist = on_spotify[f"{result['genre']} (from Likes)"]
        assert playlist["public"] is False
        assert sorted(item["id"] for item in playlist["items"]) == truth["genres"][result["genre"]]
        assert result["tracksAdded"] == result["tracksTotal"] == len(playlist["items"])

    again = call("POST", "/api/playlists", {"genres": chosen})
    rerun = wait_for(
        lambda: finished(
            call, f"/api/playlist-jobs/{again.json()['id']}", {"succeeded", "partial", "failed"}
        ),
        JOB_TIMEOUT,
        "the second playlist job",
    )
    assert [result["status"] for result in rerun["results"]] == ["skipped"] * 3
    assert [result["tracksAdded"] for result in rerun["results"]] == [0, 0, 0]
    assert len(sandbox.playlists(LISTENER["id"])) == len(on_spotify)

    assert call("POST", "/auth/logout").status_code in (200, 302)
    assert browser.get(f"{site}/session").json() == {"authenticated": False}
    assert call("GET", "/api/genres").status_code == 401
