"""POST /api/playlists and GET /api/playlist-jobs/<id>: validation, JSON errors, ownership."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from genres.models import PlaylistJob
from genres.playlists import (
    MAX_NAME_LENGTH,
    MIN_GENRE_ROOM,
    PlaylistInputError,
    playlist_job_start,
    playlist_name,
)
from tests.genres.test_playlists_runner import LIBRARY, make_listener, make_result, track_ids

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


def post(client: Client, body: Any, raw: bytes | None = None) -> Any:
    data = raw if raw is not None else json.dumps(body)
    return client.post("/api/playlists", data=data, content_type="application/json")


def test_a_valid_request_answers_202_with_a_queued_job(client, listener):
    response = post(
        client,
        {
            "genres": ["swedish pop", "jazz", "swedish pop"],
            "skipDuplicates": False,
            "namePattern": "Likes: {genre}",
            "description": "Made by Swedify from my likes",
        },
    )

    assert response.status_code == 202
    body = response.json()
    job = PlaylistJob.objects.get(pk=body["id"])
    assert body["status"] == "queued"
    assert body["results"] == []
    assert body["genres"] == ["swedish pop", "jazz"]
    assert (job.user, job.skip_duplicates, job.name_pattern) == (listener, False, "Likes: {genre}")
    assert job.scan == listener.scan_results.get().scan


def test_defaults_apply_when_only_genres_are_given(client):
    response = post(client, {"genres": ["jazz"]})

    job = PlaylistJob.objects.get(pk=response.json()["id"])
    assert (job.name_pattern, job.skip_duplicates, job.description) == (
        "{genre} (from Likes)",
        True,
        "",
    )


def test_the_job_is_readable_by_its_listener(client):
    job_id = post(client, {"genres": ["jazz"]}).json()["id"]

    response = client.get(f"/api/playlist-jobs/{job_id}")

    assert response.status_code == 200
    assert response.json()["id"] == job_id
    assert set(response.json()) >= {"id", "status", "results"}


def test_another_listeners_job_is_not_found(client):
    other = make_listener("someone")
    make_result(other, LIBRARY)
    theirs = playlist_job_start(user=other, genres=["jazz"])

    response = client.get(f"/api/playlist-jobs/{theirs.pk}")

    assert response.status_code == 404
    assert response.json() == {"error": "Playlist job not found"}


@pytest.mark.parametrize("job_id", ["00000000-0000-0000-0000-000000000000", "not-a-uuid"])
def test_an_unknown_or_malformed_job_id_is_a_json_404(client, job_id):
    response = client.get(f"/api/playlist-jobs/{job_id}")

    assert response.status_code == 404
    assert response.json() == {"error": "Playlist job not found"}


def test_fifty_one_genres_are_refused(client, listener):
    many = {f"genre {n}": track_ids(f"g{n}", 1) for n in range(51)}
    make_result(listener, many)

    assert post(client, {"genres": list(many)[:50]}).status_code == 202
    response = post(client, {"genres": list(many)})

    assert response.status_code == 400
    assert response.json() == {"error": "at most 50 genres per request, not 51"}


def test_unknown_genres_are_refused_by_name(client):
    response = post(client, {"genres": ["jazz", "polka", "yodel"]})

    assert response.status_code == 400
    assert response.json()["error"] == (
        "unknown genres (not in your latest scan): 'polka', 'yodel'"
    )
    assert not PlaylistJob.objects.exists()


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"genres": []}, "genres must name at least one genre"),
        ({}, "genres must be a list of genre names"),
        ({"genres": "jazz"}, "genres must be a list of genre names"),
        ({"genres": ["jazz", 3]}, "genres must be a list of genre names"),
        ({"genres": ["jazz"], "namePattern": "My likes"}, "namePattern must contain {genre}"),
        ({"genres": ["jazz"], "namePattern": 7}, "namePattern must be a string"),
        (
            {"genres": ["jazz"], "namePattern": "{genre}\n"},
            "namePattern must not contain control characters",
        ),
        ({"genres": ["jazz"], "description": ["x"]}, "description must be a string"),
        (
            {"genres": ["jazz"], "description": "x" * 301},
            "description must be at most 300 characters",
        ),
        (
            {"genres": ["jazz"], "description": "bell\x07"},
            "description must not contain control characters",
        ),
        ({"genres": ["jazz"], "skipDuplicates": "yes"}, "skipDuplicates must be true or false"),
        ({"genres": ["jazz"], "skipDuplicates": 1}, "skipDuplicates must be true or false"),
    ],
)
def test_bad_input_is_a_400_saying_what_is_wrong(client, body, error):
    response = post(client, body)

    assert response.status_code == 400
    assert response.json() == {"error": error}


def test_a_pattern_leaving_too_little_room_for_the_genre_is_refused(client):
    fixed = "x" * (MAX_NAME_LENGTH - MIN_GENRE_ROOM)

    assert post(client, {"genres": ["jazz"], "namePattern": fixed + "{genre}"}).status_code == 202
    response = post(client, {"genres": ["jazz"], "namePattern": fixed + "y{genre}"})

    assert response.status_code == 400
    assert response.json()["error"] == (
        "namePattern leaves too little room for the genre within Spotify's limit of 100 "
        "characters for a playlist name"
    )


def test_names_fit_spotifys_limit_by_shortening_a_long_genre():
    long_genre = "progressive " * 24 + "post-rock"

    name = playlist_name("{genre} (from Likes)", long_genre)

    assert len(name) == MAX_NAME_LENGTH
    assert name.startswith("progressive progressive")
    assert name.endswith("\u2026 (from Likes)")
    assert playlist_name("{genre} (from Likes)", "jazz") == "jazz (from Likes)"
    assert playlist_name("  {genre}: {genre} ", "{genre}") == "{genre}: {genre}"
    assert len(playlist_name("{genre} / {genre}", long_genre)) <= MAX_NAME_LENGTH


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"{not json", "The request body must be JSON"),
        (b"\xff\xfe", "The request body must be JSON"),
        (b"", "genres must be a list of genre names"),
        (b'["jazz"]', "The request body must be a JSON object"),
    ],
)
def test_a_body_that_is_not_a_usable_json_object_is_a_400(client, raw, error):
    response = post(client, None, raw=raw)

    assert response.status_code == 400
    assert response.json() == {"error": error}


def test_without_a_scan_there_is_nothing_to_make_playlists_from(client):
    fresh = make_listener("newbie")
    client.force_login(fresh)

    response = post(client, {"genres": ["jazz"]})

    assert response.status_code == 400
    assert response.json()["error"].startswith("No scan yet")


def test_unclassified_is_only_a_genre_when_the_scan_has_such_tracks(client, listener):
    assert post(client, {"genres": ["Unclassified"]}).status_code == 400

    make_result(listener, LIBRARY, unclassified=track_ids("loose", 2))

    assert post(client, {"genres": ["Unclassified"]}).status_code == 202


def test_hostile_genre_names_are_accepted_verbatim(client, listener):
    hostile = ['<script>alert("x")</script>', "{genre} {0} %s", "Ünïcødé 🎸 \u202eevil"]
    make_result(listener, {name: track_ids("h", 2) for name in hostile})

    response = post(client, {"genres": hostile})

    assert response.status_code == 202
    assert response.json()["genres"] == hostile


def test_the_service_refuses_the_same_way_without_http(listener):
    with pytest.raises(PlaylistInputError, match="must contain"):
        playlist_job_start(user=listener, genres=["jazz"], name_pattern="{Genre}")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/playlists"),
        ("get", "/api/playlist-jobs/00000000-0000-0000-0000-000000000000"),
    ],
)
def test_anonymous_requests_get_a_json_401(method, path):
    response = getattr(Client(), method)(path)

    assert response.status_code == 401
    assert response.json() == {"error": "Not authenticated"}


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("get", "/api/playlists", "POST"),
        ("put", "/api/playlists", "POST"),
        ("post", "/api/playlist-jobs/00000000-0000-0000-0000-000000000000", "GET, HEAD"),
        ("delete", "/api/playlist-jobs/00000000-0000-0000-0000-000000000000", "GET, HEAD"),
    ],
)
def test_other_methods_get_a_json_405(client, method, path, allow):
    response = getattr(client, method)(path)

    assert response.status_code == 405
    assert response.json() == {"error": "Method not allowed"}
    assert response["Allow"] == allow


def test_a_post_without_the_csrf_token_is_a_json_403(listener):
    client = Client(enforce_csrf_checks=True)
    client.force_login(listener)

    response = post(client, {"genres": ["jazz"]})

    assert response.status_code == 403
    assert response.json() == {"error": "CSRF token missing or incorrect"}
    assert not PlaylistJob.objects.exists()


def test_a_post_with_the_csrf_token_is_accepted(listener):
    client = Client(enforce_csrf_checks=True)
    client.force_login(listener)
    secret = "S" * 32  # Django accepts the unmasked secret as the header value
    client.cookies["csrftoken"] = secret

    response = client.post(
        "/api/playlists",
        data=json.dumps({"genres": ["jazz"]}),
        content_type="application/json",
        headers={"X-CSRFToken": secret},
    )

    assert response.status_code == 202


def test_the_job_is_handed_to_a_worker_once_the_request_commits(
    client, monkeypatch, django_capture_on_commit_callbacks
):
    from genres import tasks

    queued: list[str] = []
    monkeypatch.setattr(tasks.playlist_job_run_task, "delay", queued.append)

    with django_capture_on_commit_callbacks(execute=True):
        job_id = post(client, {"genres": ["jazz"]}).json()["id"]

    assert queued == [job_id]


def test_a_broker_outage_still_answers_202_and_leaves_the_job_queued_for_recovery(
    client, monkeypatch, django_capture_on_commit_callbacks
):
    from genres import tasks

    def broker_down(job_id: str) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.playlist_job_run_task, "delay", broker_down)

    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, {"genres": ["jazz"]})

    assert response.status_code == 202
    assert PlaylistJob.objects.get(pk=response.json()["id"]).status == "queued"
