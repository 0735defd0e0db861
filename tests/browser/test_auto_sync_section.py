"""The home page's auto-sync section in a browser, in English and Swedish: switching it on
with an interval, "Sync now" followed to its end with what it changed, and a stopped sync that
tells the listener why."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone, translation
from playwright.sync_api import expect

from genres.models import GenrePlaylist, SyncSchedule
from tests.genres.test_pages import make_listener, make_result

pytestmark = pytest.mark.browser


def words(language: str, message: str, plural: str | None = None, n: int = 1) -> str:
    with translation.override(language):
        if plural is None:
            return translation.gettext(message)
        return translation.ngettext(message, plural, n)


@pytest.fixture
def queued_syncs(monkeypatch: pytest.MonkeyPatch, queued_jobs: list[str]) -> list[int]:
    """Sync runs (and their scans, in queued_jobs) are recorded instead of sent to a broker."""
    from genres import sync

    queued: list[int] = []
    monkeypatch.setattr(sync, "sync_enqueue", lambda *, user_id: queued.append(user_id))
    return queued


def listener_with_playlists() -> Any:
    user = make_listener()
    make_result(user, [("swedish pop", 12), ("indie rock", 6)])
    GenrePlaylist.objects.create(
        user=user,
        genre="swedish pop",
        playlist_id="p1",
        name="swedish pop (from Likes)",
        url="https://open.spotify.com/playlist/p1",
    )
    return user


@pytest.mark.parametrize("language", ["en", "sv"])
def test_switching_auto_sync_on_keeps_the_interval_and_shows_the_next_sync(
    listener_browser: Any, language: str
) -> None:
    user = listener_with_playlists()
    page, _ = listener_browser.open("/", language=language, user=user)
    section = page.locator("#sync")
    expect(section).to_contain_text(words(language, "Keep my genre playlists up to date"))
    expect(section.locator(".sync-status")).to_contain_text(words(language, "off"))
    section.locator('input[name="enabled"]').check()
    section.locator('input[name="intervalHours"]').fill("12")
    saved = "**/api/sync"
    with page.expect_navigation(), page.expect_response(saved) as answer:
        section.get_by_role("button", name=words(language, "Save")).click()
    assert (answer.value.request.method, answer.value.status) == ("PUT", 200)

    # The page has reloaded with the saved settings.
    expect(section.locator('input[name="enabled"]')).to_be_checked()
    expect(section.locator('input[name="intervalHours"]')).to_have_value("12")
    schedule = SyncSchedule.objects.get(user=user)
    assert (schedule.enabled, schedule.interval_hours) == (True, 12)
    assert schedule.next_run_at is not None
    expect(section.locator(".sync-status")).not_to_contain_text(words(language, "off"))


@pytest.mark.parametrize("language", ["en", "sv"])
def test_sync_now_is_followed_to_its_end_and_shows_what_it_changed(
    listener_browser: Any, language: str, queued_syncs: list[int]
) -> None:
    user = listener_with_playlists()
    page, _ = listener_browser.open("/", language=language, user=user)
    section = page.locator("#sync")
    sync_now = section.get_by_role("button", name=words(language, "Sync now"))
    with page.expect_response("**/api/sync/run") as answer:
        sync_now.click()
    assert answer.value.status == 202
    expect(sync_now).to_be_disabled()
    expect(section.locator(".js-sync-message")).to_be_visible()
    assert queued_syncs == [user.pk]
    assert SyncSchedule.objects.get(user=user).running_since is not None

    # The run ends: three new likes went into the swedish pop playlist.
    SyncSchedule.objects.filter(user=user).update(
        running_since=None,
        last_run_at=timezone.now() - timedelta(minutes=1),
        last_result={
            "status": "succeeded",
            "tracksAdded": 3,
            "tracksRemoved": 0,
            "playlists": [
                {
                    "genre": "swedish pop",
                    "url": "https://open.spotify.com/playlist/p1",
                    "tracksAdded": 3,
                    "tracksRemoved": 0,
                }
            ],
        },
    )
    status = section.locator(".sync-status")
    added = words(language, "%(added)s song added", "%(added)s songs added", 3)
    # The panel polls every 2 s and then reloads itself.
    expect(status).to_contain_text(added % {"added": 3}, timeout=15_000)
    link = status.get_by_role("link", name="swedish pop")
    expect(link).to_have_attribute("href", "https://open.spotify.com/playlist/p1")
    expect(sync_now).to_be_enabled()


@pytest.mark.parametrize("language", ["en", "sv"])
def test_a_sync_stopped_by_spotify_tells_the_listener_why(
    listener_browser: Any, language: str
) -> None:
    from genres.sync import STOPPED_MESSAGES

    user = listener_with_playlists()
    SyncSchedule.objects.create(
        user=user, enabled=False, stopped_reason=SyncSchedule.Stopped.REAUTH
    )
    page, _ = listener_browser.open("/", language=language, user=user)
    with translation.override(language):
        message = str(STOPPED_MESSAGES[SyncSchedule.Stopped.REAUTH])
    notice = page.locator("#sync-stopped")
    expect(notice).to_be_visible()
    expect(notice).to_have_attribute("role", "alert")
    expect(notice).to_contain_text(message)
