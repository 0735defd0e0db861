"""GET|PUT /api/sync and POST /api/sync/run: the contract's shape, and a clear 4xx for every
input a client can get wrong (ranges, types, unknown fields, no session, no CSRF token)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, TestCase
from django.utils import timezone

from genres.models import JobOrigin, Scan, SpotifyAccount, SyncSchedule
from genres.scans import SCAN_RUN_TASK
from genres.sync import SYNC_RUN_TASK
from tests.genres.test_api_inputs import listener_with_genres, strict_client

pytestmark = pytest.mark.django_db

CONTRACT_KEYS = {
    "enabled",
    "intervalHours",
    "removeUnliked",
    "lastRunAt",
    "nextRunAt",
    "lastResult",
}


@pytest.fixture
def alice() -> Any:
    return listener_with_genres()


@pytest.fixture
def api(alice: Any) -> tuple[Client, str]:
    return strict_client(alice)


def put(api: tuple[Client, str], body: Any, **extra: Any) -> Any:
    client, token = api
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.put(
        "/api/sync",
        data=data,
        content_type=extra.pop("content_type", "application/json"),
        HTTP_X_CSRFTOKEN=token,
        **extra,
    )


@pytest.fixture
def queued(monkeypatch: Any) -> list[tuple[str, str]]:
    """(task name, id) of every job handed to Celery once its transaction commits (requests
    of run_now run their commit callbacks)."""
    from genres import playlists, scans, sync, sync_runner

    sent: list[tuple[str, str]] = []

    def record(*, task_name: str, job_id: Any, **_: Any) -> None:
        sent.append((task_name, str(job_id)))

    for module in (scans, sync, sync_runner, playlists):
        monkeypatch.setattr(module, "job_enqueue", record)
    return sent


def run_now(api: tuple[Client, str], body: Any = None) -> Any:
    client, token = api
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(
            "/api/sync/run",
            data=json.dumps(body) if body is not None else "",
            content_type="application/json",
            HTTP_X_CSRFTOKEN=token,
        )


def test_a_listener_who_never_turned_it_on_gets_the_defaults(api):
    answer = api[0].get("/api/sync")

    assert answer.status_code == 200
    body = answer.json()
    assert set(body) >= CONTRACT_KEYS
    assert body["enabled"] is False
    assert body["intervalHours"] == 6
    assert body["removeUnliked"] is False
    assert body["lastRunAt"] is None
    assert body["nextRunAt"] is None
    assert body["lastResult"] is None
    assert not SyncSchedule.objects.exists()  # reading creates nothing


def test_turning_it_on_schedules_the_next_run_about_one_interval_ahead(api, alice):
    before = timezone.now()

    answer = put(api, {"enabled": True, "intervalHours": 12})

    assert answer.status_code == 200
    body = answer.json()
    assert body["enabled"] is True
    assert body["intervalHours"] == 12
    schedule = SyncSchedule.objects.get(user=alice)
    # 12 h with 10 % jitter either way: far from both "now" and "a day".
    assert before + timedelta(hours=10) < schedule.next_run_at < before + timedelta(hours=14)
    assert body["nextRunAt"].endswith("Z")


def test_turning_it_off_clears_the_next_run_and_keeps_the_other_settings(api, alice):
    put(api, {"enabled": True, "intervalHours": 3, "removeUnliked": True})

    body = put(api, {"enabled": False}).json()

    assert body["enabled"] is False
    assert body["nextRunAt"] is None
    assert body["intervalHours"] == 3
    assert body["removeUnliked"] is True


def test_an_empty_put_changes_nothing_and_answers_the_object(api):
    answer = put(api, {})

    assert answer.status_code == 200
    assert answer.json()["enabled"] is False


@pytest.mark.parametrize("hours", [1, 168])
def test_the_interval_may_be_anything_from_1_to_168_hours(api, hours):
    answer = put(api, {"intervalHours": hours})

    assert answer.status_code == 200
    assert answer.json()["intervalHours"] == hours


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"intervalHours": 0}, "intervalHours"),
        ({"intervalHours": 169}, "intervalHours"),
        ({"intervalHours": -5}, "intervalHours"),
        ({"intervalHours": 6.5}, "intervalHours"),
        ({"intervalHours": "6"}, "intervalHours"),
        ({"intervalHours": True}, "intervalHours"),
        ({"intervalHours": 10**40}, "intervalHours"),
        ({"enabled": "yes"}, "enabled"),
        ({"enabled": 1}, "enabled"),
        ({"enabled": None}, "enabled"),
        ({"removeUnliked": "false"}, "removeUnliked"),
        ({"removeUnliked": []}, "removeUnliked"),
        ({"enable": True}, "enable"),
        ({"lastRunAt": "2026-01-01T00:00:00Z"}, "lastRunAt"),
        ({"enabled": True, "surprise": 1}, "surprise"),
    ],
)
def test_a_wrong_value_or_field_is_a_400_that_names_it_and_changes_nothing(api, body, says):
    answer = put(api, body)

    assert answer.status_code == 400
    assert says in answer.json()["error"]
    assert not SyncSchedule.objects.filter(enabled=True).exists()


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        ("[true]", "application/json", 400),
        ('"enabled"', "application/json", 400),
        ("{not json", "application/json", 400),
        ("enabled=true", "application/x-www-form-urlencoded", 415),
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused(api, data, content_type, status):
    answer = put(api, data, content_type=content_type)

    assert answer.status_code == status
    assert "error" in answer.json()


def test_without_a_session_every_sync_route_answers_401(db):
    client = Client()

    assert client.get("/api/sync").status_code == 401
    assert client.put("/api/sync", "{}", content_type="application/json").status_code == 401
    assert client.post("/api/sync/run", "{}", content_type="application/json").status_code == 401


def test_a_put_without_a_csrf_token_is_a_403(api):
    client, _ = api

    answer = client.put("/api/sync", '{"enabled": true}', content_type="application/json")

    assert answer.status_code == 403
    assert not SyncSchedule.objects.exists()


def test_other_methods_are_405_with_allow(api):
    client, _ = api

    assert client.post("/api/sync", "{}", content_type="application/json").status_code == 405
    answer = client.get("/api/sync/run")
    assert answer.status_code == 405
    assert answer["Allow"] == "POST"


def test_a_listener_spotify_refuses_cannot_turn_it_on(api, alice):
    SpotifyAccount.objects.filter(user=alice).update(needs_reauth=True)

    # The API's gate: a listener Spotify no longer honours is not signed in to the API.
    assert put(api, {"enabled": True}).status_code == 401


def test_sync_now_starts_a_run_with_an_interactive_scan(api, alice, queued):
    answer = run_now(api)

    assert answer.status_code == 202
    body = answer.json()
    assert set(body) >= CONTRACT_KEYS
    assert body["running"] is True
    schedule = SyncSchedule.objects.get(user=alice)
    assert schedule.running_since is not None
    assert schedule.run_origin == JobOrigin.LISTENER
    scan = Scan.objects.get(pk=schedule.scan_id)
    assert scan.status == Scan.Status.QUEUED
    assert scan.origin == JobOrigin.LISTENER
    assert queued == [(SCAN_RUN_TASK, str(scan.pk)), (SYNC_RUN_TASK, str(alice.pk))]


def test_a_second_sync_now_while_one_runs_answers_the_same_and_starts_nothing(api, alice, queued):
    first = run_now(api)

    second = run_now(api)

    assert second.status_code == 202
    assert second.json() == first.json()
    assert Scan.objects.filter(user=alice).exclude(status=Scan.Status.SUCCEEDED).count() == 1
    assert len(queued) == 2  # one scan and one driver, from the first request only


def test_sync_now_refuses_a_body_with_fields(api):
    answer = run_now(api, {"force": True})

    assert answer.status_code == 400
    assert "force" in answer.json()["error"]
    assert not SyncSchedule.objects.exists()


def test_one_listener_never_sees_anothers_sync(api, alice):
    bob = get_user_model().objects.create_user("spotify:bob")
    SyncSchedule.objects.create(user=bob, enabled=True, interval_hours=2)

    assert api[0].get("/api/sync").json()["enabled"] is False
