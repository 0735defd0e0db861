"""The operators' sync health across listeners, and a disconnect taking auto-sync with it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from genres.admin_sync import sync_health
from genres.listeners import listener_disconnect
from genres.models import SpotifyAccount, SyncSchedule

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client: Any) -> Any:
    admin = get_user_model().objects.create_superuser("operator", "op@example.com", None)
    client.force_login(admin)
    return client


def schedule(name: str, **fields: Any) -> SyncSchedule:
    user = get_user_model().objects.create_user(f"spotify:{name}")
    SpotifyAccount.objects.create(user=user, spotify_id=name)
    return SyncSchedule.objects.create(user=user, **fields)


@pytest.fixture
def listeners() -> dict[str, SyncSchedule]:
    now = timezone.now()
    return {
        "ok": schedule("okay", enabled=True, next_run_at=now + timedelta(hours=1)),
        "failing": schedule(
            "flaky",
            enabled=True,
            failures=3,
            next_run_at=now + timedelta(hours=1),
            last_result={"status": "failed", "error": "Spotify failed: 503"},
        ),
        "overdue": schedule("late", enabled=True, next_run_at=now - timedelta(hours=2)),
        "running": schedule("busy", enabled=True, running_since=now),
        "stopped": schedule("gone", enabled=False, stopped_reason="reauth"),
        "off": schedule("quiet", enabled=False),
    }


def test_each_listener_gets_one_health_word(listeners):
    assert {word: sync_health(s) for word, s in listeners.items()} == {
        word: word for word in listeners
    }


def test_the_list_sums_up_health_and_shows_why_runs_fail(operator, listeners):
    page = operator.get("/admin/genres/syncschedule/").content.decode()

    assert "Auto-sync: 4 on, 1 running, 1 failing, 1 overdue, 1 stopped" in page
    assert "Spotify failed: 503" in page
    assert "stopped: Reauth" in page


@pytest.mark.parametrize("word", ["ok", "failing", "overdue", "running", "stopped", "off"])
def test_the_health_filter_finds_exactly_those_listeners(operator, listeners, word):
    page = operator.get(f"/admin/genres/syncschedule/?health={word}").content.decode()

    shown = {name for name, s in listeners.items() if s.user.username in page}
    assert shown == {word}


def test_the_sync_admin_is_read_only(operator, listeners):
    assert operator.get("/admin/genres/syncschedule/add/").status_code == 403
    pk = listeners["ok"].pk
    answer = operator.post(f"/admin/genres/syncschedule/{pk}/delete/", {"post": "yes"})
    assert answer.status_code == 403


def test_a_staff_listener_who_disconnects_loses_auto_sync_but_keeps_the_account():
    on = schedule("staffer", enabled=True, next_run_at=timezone.now())
    get_user_model().objects.filter(pk=on.user_id).update(is_staff=True)

    listener_disconnect(user=get_user_model().objects.get(pk=on.user_id))

    assert not SyncSchedule.objects.exists()
    assert get_user_model().objects.filter(pk=on.user_id).exists()
