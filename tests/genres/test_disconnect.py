"""Listeners can leave: "Disconnect Spotify and delete my data" (POST /auth/disconnect)."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client

from genres.models import (
    Artist,
    GenrePlaylist,
    LibrarySource,
    LibraryTrack,
    PlaylistJob,
    Scan,
    ScanResult,
    SpotifyAccount,
)
from tests.genres.conftest import sign_in

pytestmark = pytest.mark.django_db

LISTENER_MODELS = (
    SpotifyAccount,
    Scan,
    ScanResult,
    LibraryTrack,
    LibrarySource,
    PlaylistJob,
    GenrePlaylist,
)


def give_data(user: Any) -> None:
    """A bit of everything Swedify keeps about a listener, including unfinished jobs."""
    done = Scan.objects.create(user=user, status=Scan.Status.SUCCEEDED)
    ScanResult.objects.create(scan=done, user=user, total_tracks=1, payload={"genres": []})
    Scan.objects.create(user=user, status=Scan.Status.RUNNING, claimed_by="worker-1")
    LibraryTrack.objects.create(user=user, track_id="t1", source="liked", artist_ids=["a1"])
    LibrarySource.objects.create(user=user, source="liked", total=1)
    PlaylistJob.objects.create(user=user, genres=["pop"], status=PlaylistJob.Status.QUEUED)
    GenrePlaylist.objects.create(user=user, genre="pop", playlist_id="p1", name="pop")


def rows_of(user_id: int) -> dict[str, int]:
    return {
        model.__name__: model.objects.filter(user_id=user_id).count() for model in LISTENER_MODELS
    }


def test_disconnecting_deletes_tokens_and_every_row_and_ends_every_session(
    client: Client, spotify_at_sandbox: Any
) -> None:
    sign_in(client, spotify_at_sandbox, "listener")
    user = get_user_model().objects.get(spotify_account__spotify_id="listener")
    assert SpotifyAccount.objects.get(user=user).refresh_token_encrypted
    give_data(user)
    other_device = Client()
    sign_in(other_device, spotify_at_sandbox, "listener")
    bystander = Client()
    sign_in(bystander, spotify_at_sandbox, "newbie")
    bystander_user = get_user_model().objects.get(spotify_account__spotify_id="newbie")
    give_data(bystander_user)
    Artist.objects.create(spotify_id="a1", genres=["pop"], fetched_at="2026-01-01T00:00Z")

    answer = client.post("/auth/disconnect")

    assert answer.status_code == 302
    assert answer["Location"] == "/"
    assert set(rows_of(user.pk).values()) == {0}
    assert not get_user_model().objects.filter(pk=user.pk).exists()
    assert client.get("/session").json() == {"authenticated": False}
    assert other_device.get("/session").json() == {"authenticated": False}
    assert other_device.get("/api/genres").status_code == 401
    # Nobody else's data, and nothing shared, goes with it.
    assert set(rows_of(bystander_user.pk).values()) == {1, 2}
    assert bystander.get("/session").json()["authenticated"] is True
    assert Artist.objects.filter(spotify_id="a1").exists()


def test_signing_in_again_starts_from_nothing(client: Client, spotify_at_sandbox: Any) -> None:
    sign_in(client, spotify_at_sandbox, "listener")
    user = get_user_model().objects.get(spotify_account__spotify_id="listener")
    give_data(user)
    assert client.get("/api/genres").status_code == 200

    client.post("/auth/disconnect")
    sign_in(client, spotify_at_sandbox, "listener")

    answer = client.get("/api/genres")
    assert answer.status_code == 404
    assert answer.json() == {"error": "No scan yet"}


def test_the_home_page_links_a_confirmation_page_whose_form_does_it(
    client: Client, spotify_at_sandbox: Any
) -> None:
    sign_in(client, spotify_at_sandbox, "listener")

    home = client.get("/").content.decode()
    page = client.get("/auth/disconnect")

    assert 'href="/auth/disconnect"' in home
    assert page.status_code == 200
    html = page.content.decode()
    assert '<form method="post" action="/auth/disconnect"' in html
    assert "csrfmiddlewaretoken" in html
    assert SpotifyAccount.objects.filter(spotify_id="listener").exists(), "GET deletes nothing"


def test_disconnecting_needs_the_csrf_token(spotify_at_sandbox: Any) -> None:
    browser = Client(enforce_csrf_checks=True)
    sign_in(browser, spotify_at_sandbox, "listener")

    answer = browser.post("/auth/disconnect")

    assert answer.status_code == 403
    assert SpotifyAccount.objects.filter(spotify_id="listener").exists()


def test_disconnecting_without_a_session_only_redirects(client: Client) -> None:
    answer = client.post("/auth/disconnect")

    assert (answer.status_code, answer["Location"]) == (302, "/")


def test_a_staff_listener_keeps_the_operator_account_but_loses_the_listener_data(
    client: Client, spotify_at_sandbox: Any
) -> None:
    sign_in(client, spotify_at_sandbox, "listener")
    user = get_user_model().objects.get(spotify_account__spotify_id="listener")
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    give_data(user)

    client.post("/auth/disconnect")

    assert get_user_model().objects.filter(pk=user.pk, is_staff=True).exists()
    assert set(rows_of(user.pk).values()) == {0}
    assert not [s for s in Session.objects.all() if s.get_decoded().get("_auth_user_id")]


def test_the_audit_line_counts_without_naming_the_listener(
    client: Client, spotify_at_sandbox: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sign_in(client, spotify_at_sandbox, "listener")
    user = get_user_model().objects.get(spotify_account__spotify_id="listener")
    give_data(user)

    with caplog.at_level(logging.INFO, logger="swedify.audit"):
        client.post("/auth/disconnect")

    lines = [r.getMessage() for r in caplog.records if r.name == "swedify.audit"]
    assert len(lines) == 1
    # Counts only: no id, name or Spotify id of the listener.
    assert re.fullmatch(
        r"listener_disconnect: \d+ rows deleted, 2 jobs cancelled, 1 sessions ended", lines[0]
    ), lines[0]
