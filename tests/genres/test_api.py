"""The JSON API's edges: 401, 403, 400, 404 and 405 are JSON, never a redirect or a 500."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from genres.models import Scan, ScanResult, SpotifyAccount

pytestmark = pytest.mark.django_db

ENDPOINTS = [("post", "/api/scans"), ("get", f"/api/scans/{uuid.uuid4()}"), ("get", "/api/genres")]


def make_listener(name: str = "alice") -> Any:
    user = get_user_model().objects.create_user(f"spotify:{name}")
    SpotifyAccount.objects.create(user=user, spotify_id=name, display_name=name.title())
    return user


@pytest.fixture
def alice(db: Any) -> Any:
    return make_listener("alice")


@pytest.fixture
def api(alice: Any, enqueued: list[str]) -> Client:
    """A client signed in as alice that enforces CSRF like a browser."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    return client


def csrf(client: Client) -> str:
    return client.get("/session").json()["csrfToken"]


def post(client: Client, body: Any, *, raw: bytes | None = None, token: str | None = None) -> Any:
    return client.post(
        "/api/scans",
        data=raw if raw is not None else json.dumps(body),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token if token is not None else csrf(client),
    )


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_an_anonymous_client_gets_401_json_not_a_redirect(client, method, path):
    answer = getattr(client, method)(path)

    assert answer.status_code == 401
    assert answer["Content-Type"] == "application/json"
    assert answer.json() == {"error": "Not authenticated"}


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_a_corrupt_or_unknown_session_gets_401(alice, method, path):
    client = Client()
    client.force_login(alice)
    key = client.cookies["sessionid"].value
    Session.objects.filter(session_key=key).update(session_data="not a signed session at all")
    from swedify.cache import cache_clear_own

    cache_clear_own()
    stranger = Client()
    stranger.cookies["sessionid"] = "x" * 40

    assert getattr(client, method)(path).status_code == 401
    assert getattr(stranger, method)(path).json() == {"error": "Not authenticated"}


def test_staff_without_a_spotify_account_gets_401(client, db):
    staff = get_user_model().objects.create_user("operator", is_staff=True)
    client.force_login(staff)

    assert client.get("/api/genres").status_code == 401


def test_a_listener_who_must_sign_in_again_gets_401(api, alice):
    SpotifyAccount.objects.filter(user=alice).update(needs_reauth=True)

    assert api.get("/api/genres").json() == {"error": "Not authenticated"}


def test_a_post_without_a_csrf_token_gets_403_json(api):
    answer = post(api, {"sources": ["liked"]}, token="")

    assert answer.status_code == 403
    assert answer.json()["error"].startswith("CSRF")
    assert not Scan.objects.exists()


def test_an_anonymous_post_without_csrf_gets_401_not_403(db):
    strict = Client(enforce_csrf_checks=True)

    answer = strict.post("/api/scans", data="{}", content_type="application/json")

    assert answer.status_code == 401
    assert answer.json() == {"error": "Not authenticated"}


def test_the_csrf_failure_view_answers_json_under_api(rf):
    from genres.views import csrf_failure

    assert csrf_failure(rf.post("/api/anything")).status_code == 403
    assert json.loads(csrf_failure(rf.post("/api/x")).content) == {
        "error": "CSRF token missing or incorrect"
    }


def test_the_csrf_failure_view_answers_json_under_api_only(api, db):
    strict = Client(enforce_csrf_checks=True)

    assert strict.post("/auth/logout").status_code == 403
    assert strict.post("/auth/logout")["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "must be JSON"),
        (b"\xff\xfe", "must be JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"liked"', "JSON object"),
        (b'{"sources": "liked"}', "list"),
        (b'{"sources": []}', "at least one"),
        (b'{"sources": [42]}', "string"),
        (b'{"sources": ["likes"]}', "playlist:"),
        (b'{"sources": ["playlist:"]}', "playlist:"),
        (b'{"sources": ["playlist:abc/../x"]}', "playlist:"),
        (b'{"sources": ["album:4aawyAB9vmqN3uQ7FjRGTy"]}', "playlist:"),
        (b'{"refresh": "yes"}', "refresh"),
        (b'{"refresh": 1}', "refresh"),
        (json.dumps({"sources": ["liked"] * 21}).encode(), "at most"),
        (json.dumps({"sources": [f"playlist:{n:022d}" for n in range(21)]}).encode(), "at most"),
    ],
)
def test_bad_input_gets_400_saying_what_is_wrong(api, raw, message):
    answer = post(api, None, raw=raw)

    assert answer.status_code == 400
    assert message in answer.json()["error"]
    assert not Scan.objects.exists()


def test_an_empty_body_scans_liked_songs(api, enqueued):
    answer = post(api, None, raw=b"")

    assert answer.status_code == 202
    assert answer.json()["sources"] == ["liked"]
    assert answer.json()["status"] == "queued"


def test_a_new_scan_is_202_and_a_second_start_returns_the_running_one(api, alice):
    first = post(api, {"sources": ["liked"], "refresh": False})
    Scan.objects.filter(pk=first.json()["id"]).update(status=Scan.Status.RUNNING)

    second = post(api, {"sources": ["liked", "playlist:4aawyAB9vmqN3uQ7FjRGTy"]})

    assert first.status_code == 202
    body = first.json()
    assert set(body) >= {
        "id",
        "status",
        "step",
        "tracksTotal",
        "tracksFound",
        "artistsToFetch",
        "artistsFetched",
        "startedAt",
        "finishedAt",
        "resumeAt",
        "error",
    }
    assert second.status_code == 200
    assert second.json()["id"] == body["id"]
    assert second.json()["status"] == "running"
    assert Scan.objects.filter(user=alice).count() == 1


def _succeeded(user: Any, *, age: timedelta, sources: list[str] | None = None) -> Scan:
    finished = timezone.now() - age
    scan = Scan.objects.create(
        user=user,
        sources=sources or ["liked"],
        status=Scan.Status.SUCCEEDED,
        step=Scan.Step.DONE,
        finished_at=finished,
    )
    ScanResult.objects.create(scan=scan, user=user, payload={"genres": []})
    return scan


def test_a_scan_younger_than_six_hours_is_reused(api, alice):
    fresh = _succeeded(alice, age=timedelta(hours=5, minutes=59))

    answer = post(api, {"refresh": False})

    assert answer.status_code == 200
    assert answer.json()["id"] == str(fresh.pk)
    assert answer.json()["reused"] is True


def test_a_scan_older_than_six_hours_or_of_other_sources_is_not_reused(api, alice):
    _succeeded(alice, age=timedelta(hours=6, minutes=1))
    _succeeded(alice, age=timedelta(minutes=5), sources=["playlist:4aawyAB9vmqN3uQ7FjRGTy"])

    answer = post(api, {"refresh": False})

    assert answer.status_code == 202
    assert answer.json()["reused"] is False


def test_a_listener_never_sees_another_listeners_scan(api):
    bob = make_listener("bob")
    theirs = Scan.objects.create(user=bob, sources=["liked"])

    answer = api.get(f"/api/scans/{theirs.pk}")

    assert answer.status_code == 404
    assert answer.json() == {"error": "Scan not found"}


@pytest.mark.parametrize("scan_id", ["not-a-uuid", str(uuid.uuid4()), "1", "%00"])
def test_unknown_scan_ids_get_404_json(api, scan_id):
    answer = api.get(f"/api/scans/{scan_id}")

    assert answer.status_code == 404
    assert answer.json() == {"error": "Scan not found"}


def test_unknown_api_paths_get_404_json(api):
    answer = api.get("/api/nothing/here")

    assert answer.status_code == 404
    assert answer.json() == {"error": "Not found"}


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("get", "/api/scans", "POST"),
        ("delete", "/api/scans", "POST"),
        ("post", "/api/genres", "GET, HEAD"),
        ("put", f"/api/scans/{uuid.uuid4()}", "GET, HEAD"),
    ],
)
def test_a_wrong_method_gets_405_json(api, method, path, allow):
    answer = getattr(api, method)(path)

    assert answer.status_code == 405
    assert answer["Allow"] == allow
    assert answer.json() == {"error": "Method not allowed"}


def test_genres_is_404_before_the_first_successful_scan(api, alice):
    Scan.objects.create(user=alice, status=Scan.Status.FAILED, sources=["liked"])

    answer = api.get("/api/genres")

    assert answer.status_code == 404
    assert answer.json() == {"error": "No scan yet"}


def test_genres_answers_the_latest_successful_result_and_escapes_html(api, alice):
    older = _succeeded(alice, age=timedelta(days=2))
    newer = _succeeded(alice, age=timedelta(days=1))
    ScanResult.objects.filter(scan=newer).update(
        payload={
            "schemaVersion": 1,
            "scanId": str(newer.pk),
            "genres": [{"name": "<b>&", "count": 1, "trackIds": ["t"]}],
        }
    )
    Scan.objects.create(user=alice, status=Scan.Status.FAILED, sources=["liked"])

    answer = api.get("/api/genres")

    assert answer.status_code == 200
    assert b"<b>" not in answer.content
    body = answer.json()
    assert body["scanId"] == str(newer.pk) != str(older.pk)
    assert body["genres"][0]["name"] == "<b>&"
    # Fields an older row lacks are defaulted, never missing.
    assert body["truncated"] is False
    assert body["unclassified"] == {"count": 0, "trackIds": []}
