"""Job-starting requests: one playlist job at a time, a per-listener rate limit answered with
429 and Retry-After, and progress polling that is never limited."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from genres import limits
from genres.limits import JOB_STARTS
from genres.models import PlaylistJob
from tests.genres.test_playlists_runner import LIBRARY, make_listener, make_result

pytestmark = pytest.mark.django_db


@pytest.fixture
def listener() -> Any:
    user = make_listener()
    make_result(user, LIBRARY)
    return user


@pytest.fixture
def client(listener) -> Client:
    client = Client()
    client.force_login(listener)
    return client


@pytest.fixture(autouse=True)
def frozen_window(monkeypatch) -> None:
    monkeypatch.setattr(limits.time, "time", lambda: 1_800_000_030.0)


def request_playlists(client: Client, genres: list[str]) -> Any:
    body = json.dumps({"genres": genres})
    return client.post("/api/playlists", data=body, content_type="application/json")


def test_a_second_playlist_request_answers_200_with_the_unfinished_job(client, listener) -> None:
    first = request_playlists(client, ["jazz"])
    second = request_playlists(client, ["indie rock"])

    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["genres"] == ["jazz"]
    assert PlaylistJob.objects.filter(user=listener).count() == 1


def test_a_hundred_requests_queue_one_job_and_the_rest_are_limited(client, listener) -> None:
    answers = [request_playlists(client, ["jazz"]).status_code for _ in range(100)]

    assert PlaylistJob.objects.filter(user=listener).count() == 1
    assert answers[: JOB_STARTS.requests] == [202] + [200] * (JOB_STARTS.requests - 1)
    assert set(answers[JOB_STARTS.requests :]) == {429}


def test_the_limit_answers_json_with_retry_after_and_counts_scans_too(client, enqueued) -> None:
    for _ in range(JOB_STARTS.requests):
        client.post("/api/scans", data="{}", content_type="application/json")

    limited = request_playlists(client, ["jazz"])

    assert limited.status_code == 429
    assert limited["Content-Type"] == "application/json"
    assert limited["Retry-After"] == "30"
    assert "error" in limited.json()


def test_progress_polling_is_never_limited(client) -> None:
    job = request_playlists(client, ["jazz"]).json()
    for _ in range(JOB_STARTS.requests + 5):
        request_playlists(client, ["jazz"])

    polls = {client.get(f"/api/playlist-jobs/{job['id']}").status_code for _ in range(50)}

    assert polls == {200}
    assert client.get("/api/genres").status_code == 200


def test_another_listener_is_not_limited_by_the_first(client) -> None:
    for _ in range(JOB_STARTS.requests + 1):
        request_playlists(client, ["jazz"])
    other = make_listener("other")
    make_result(other, LIBRARY)
    theirs = Client()
    theirs.force_login(other)

    assert request_playlists(theirs, ["jazz"]).status_code == 202


def test_job_starts_are_not_limited_when_the_cache_is_down(client, monkeypatch) -> None:
    from django.core.cache import cache

    monkeypatch.setattr(cache, "add", lambda *a, **k: None)
    monkeypatch.setattr(cache, "incr", lambda *a, **k: None)

    answers = {request_playlists(client, ["jazz"]).status_code for _ in range(30)}

    assert answers == {200, 202}
