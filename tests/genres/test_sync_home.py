"""The home page's auto-sync panel: the settings, the last sync and what it changed, the
next one, and why auto-sync stopped."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from genres.models import GenrePlaylist, SpotifyAccount, SyncSchedule
from tests.genres.test_api_inputs import listener_with_genres

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice() -> Any:
    return listener_with_genres()


def home(user: Any) -> str:
    client = Client()
    client.force_login(user)
    answer = client.get("/")
    assert answer.status_code == 200
    return answer.content.decode()


def test_a_listener_sees_the_panel_with_auto_sync_off(alice):
    page = home(alice)

    assert 'id="sync"' in page
    assert "Keep my genre playlists up to date" in page
    assert "swedify/sync.js" in page
    assert "Make a playlist from your genres first" in page


def test_the_panel_shows_the_last_sync_what_it_changed_and_the_next_one(alice):
    now = timezone.now()
    GenrePlaylist.objects.create(user=alice, genre="jazz", playlist_id="p1", name="jazz")
    SyncSchedule.objects.create(
        user=alice,
        enabled=True,
        interval_hours=6,
        last_run_at=now - timedelta(minutes=30),
        next_run_at=now + timedelta(hours=5),
        last_result={
            "status": "succeeded",
            "tracksAdded": 3,
            "tracksRemoved": 1,
            "playlistsUpdated": 1,
            "error": None,
            "playlists": [
                {
                    "genre": "<b>jazz</b>",
                    "url": "javascript:alert(1)",
                    "tracksAdded": 3,
                    "tracksRemoved": 1,
                }
            ],
        },
    )

    page = home(alice)

    assert "30\xa0minutes ago" in page
    assert "3 songs added" in page
    assert "1 song removed" in page
    assert "in about 4\xa0hours" in page
    assert "&lt;b&gt;jazz&lt;/b&gt;" in page  # genre names are data, never markup
    assert "javascript:" not in page  # only https links to playlists
    assert "Make a playlist from your genres first" not in page


def test_a_failed_sync_says_why(alice):
    SyncSchedule.objects.create(
        user=alice,
        last_run_at=timezone.now(),
        last_result={"status": "failed", "error": "Spotify failed: 503", "tracksAdded": 0},
    )

    assert "Spotify failed: 503" in home(alice)


def test_a_listener_who_must_reconnect_is_told_auto_sync_stopped(alice):
    SpotifyAccount.objects.filter(user=alice).update(needs_reauth=True)
    SyncSchedule.objects.create(user=alice, enabled=False, stopped_reason="reauth")

    page = home(alice)

    assert "Auto-sync stopped" in page
    assert 'id="sync"' not in page  # no settings until they reconnect
