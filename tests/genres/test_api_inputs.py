"""Input no client should send still gets a 4xx JSON answer and changes nothing: nesting that
would exhaust Python's stack, form bodies, text a database cannot store, bodies too large or
without a length, bidi overrides in playlist names; and unread bodies are drained."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.test import Client, RequestFactory

from genres.models import PlaylistJob, Scan, ScanResult, SpotifyAccount
from genres.views import MAX_BODY_BYTES, MAX_JSON_DEPTH, json_body
from swedify.middleware import DRAIN_MAX_BYTES, RequestBodyDrainMiddleware, request_body_drain

pytestmark = pytest.mark.django_db

GENRES = {"swedish pop": ["a" * 22, "b" * 22], "jazz": ["c" * 22]}
# 60 KB: under the size limit, 30,000 levels deep.
DEEP = b'{"sources":' + b"[" * 30_000 + b"]" * 30_000 + b"}"
DEEP_PLAYLISTS = b'{"genres":' + b"[" * 30_000 + b"]" * 30_000 + b"}"


def listener_with_genres(name: str = "alice") -> Any:
    """A listener whose latest successful scan found GENRES."""
    user = get_user_model().objects.create_user(f"spotify:{name}")
    SpotifyAccount.objects.create(user=user, spotify_id=name, display_name=name.title())
    scan = Scan.objects.create(user=user, status=Scan.Status.SUCCEEDED, step=Scan.Step.DONE)
    ScanResult.objects.create(
        scan=scan,
        user=user,
        payload={
            "schemaVersion": 1,
            "scanId": str(scan.pk),
            "genres": [{"name": n, "count": len(t), "trackIds": t} for n, t in GENRES.items()],
            "unclassified": {"count": 0, "trackIds": []},
        },
    )
    return user


def strict_client(user: Any) -> tuple[Client, str]:
    """A client signed in as ``user`` that enforces CSRF like a browser, and its token."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client, client.get("/session").json()["csrfToken"]


def row_counts() -> dict[str, int]:
    """Rows of every model of the listener side, and of users."""
    models = [*apps.get_app_config("genres").get_models(), get_user_model()]
    return {model._meta.label: model._default_manager.count() for model in models}


@pytest.fixture
def alice() -> Any:
    return listener_with_genres()


@pytest.fixture
def api(alice: Any) -> tuple[Client, str]:
    return strict_client(alice)


def send(api: tuple[Client, str], path: str, raw: bytes, content_type: str, **extra: Any) -> Any:
    client, token = api
    return client.post(path, data=raw, content_type=content_type, HTTP_X_CSRFTOKEN=token, **extra)


def refused(answer: Any, status: int, words: str) -> None:
    assert answer.status_code == status, answer.content[:200]
    assert answer["Content-Type"] == "application/json"
    assert words in answer.json()["error"]


# --- Nesting ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "raw"), [("/api/scans", DEEP), ("/api/playlists", DEEP_PLAYLISTS)]
)
def test_json_nested_30000_deep_gets_400_not_a_recursion_error(api, path, raw):
    before = row_counts()

    answer = send(api, path, raw, "application/json")

    refused(answer, 400, "nest deeper")
    assert row_counts() == before


def test_nesting_up_to_the_bound_is_parsed_and_brackets_inside_strings_do_not_count():
    factory = RequestFactory()
    deepest = {"a": json.loads("[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1))}
    brackets_in_text = {"sources": ["[" * 5_000 + '\\"{' * 100]}

    def parsed(value: Any) -> Any:
        return json_body(factory.post("/", json.dumps(value), content_type="application/json"))

    assert parsed(deepest) == deepest
    assert parsed(brackets_in_text) == brackets_in_text


# --- Content types ----------------------------------------------------------------------------


def multipart(token: str) -> tuple[bytes, str]:
    boundary = "XyZ"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrfmiddlewaretoken"\r\n\r\n'
        f'{token}\r\n--{boundary}\r\nContent-Disposition: form-data; name="genres"\r\n\r\n'
        f"jazz\r\n--{boundary}--\r\n"
    ).encode()
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("path", ["/api/playlists", "/api/scans"])
def test_a_multipart_body_gets_415_json_not_a_raw_post_data_exception(api, path):
    before = row_counts()
    body, content_type = multipart(api[1])

    with_header = send(api, path, body, content_type)
    token_in_form_only = api[0].post(path, data=body, content_type=content_type)

    refused(with_header, 415, "application/json")
    refused(token_in_form_only, 415, "application/json")
    assert row_counts() == before


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data",  # no boundary: Django's parser would raise
        "application/json; charset=latin-1",
        "application/jsonp",
        "",
    ],
)
def test_a_body_not_sent_as_json_gets_415(api, content_type):
    answer = send(api, "/api/playlists", b'{"genres": ["jazz"]}', content_type)

    refused(answer, 415, "application/json")
    assert not PlaylistJob.objects.exists()


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=UTF-8", "application/vnd+json"]
)
def test_json_content_types_are_accepted(api, content_type):
    answer = send(api, "/api/playlists", b'{"genres": ["jazz"]}', content_type)

    assert answer.status_code == 202


def test_an_empty_post_needs_no_content_type(api):
    client, token = api

    answer = client.generic("POST", "/api/scans", b"", HTTP_X_CSRFTOKEN=token)

    assert answer.status_code == 202


@pytest.mark.parametrize(
    "content_type", ["multipart/form-data", "application/x-www-form-urlencoded"]
)
def test_an_empty_body_declared_as_a_form_gets_415_json(api, content_type):
    client, token = api
    before = row_counts()

    answer = client.generic(
        "POST", "/api/scans", b"", CONTENT_TYPE=content_type, HTTP_X_CSRFTOKEN=token
    )

    refused(answer, 415, "application/json")
    assert row_counts() == before


def test_a_wrong_content_type_without_csrf_token_changes_nothing_either(alice):
    client, _ = strict_client(alice)

    answer = client.post("/api/playlists", data="genres=jazz", content_type="text/plain")

    assert answer.status_code in (403, 415)
    assert not PlaylistJob.objects.exists()


@pytest.mark.parametrize("path", ["/api/%0A", "/api/x%0Ay", "/api/scans%0A", "/api/scans/%0A"])
def test_a_path_with_a_newline_under_api_gets_json_404(api, path):
    answer = api[0].get(path)

    assert answer.status_code == 404
    assert answer["Content-Type"] == "application/json"
    assert answer.json()["error"].lower().endswith("not found")


# --- Text a database cannot store -------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/api/playlists", rb'{"genres": ["jazz"], "description": "\ud800"}'),
        ("/api/playlists", rb'{"genres": ["jazz"], "namePattern": "{genre} \udfff"}'),
        ("/api/playlists", rb'{"genres": ["jazz"], "description": "a\u0000b"}'),
        ("/api/playlists", rb'{"genres": ["jazz"], "\ud800": 1}'),
        ("/api/scans", rb'{"sources": ["playlist:\ud800"]}'),
        ("/api/scans", rb'{"sources": ["liked"], "x": {"y": ["\u0000"]}}'),
    ],
)
def test_a_lone_surrogate_or_nul_gets_400_not_a_unicode_encode_error(api, path, raw):
    before = row_counts()

    answer = send(api, path, raw, "application/json")

    refused(answer, 400, "NUL or unpaired surrogates")
    assert row_counts() == before


def test_a_surrogate_pair_is_ordinary_text(api):
    answer = send(
        api,
        "/api/playlists",
        rb'{"genres": ["jazz"], "description": "\ud83c\udfb7"}',
        "application/json",
    )

    assert answer.status_code == 202
    assert PlaylistJob.objects.get().description == "\N{SAXOPHONE}"


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_not_json(api, constant):
    answer = send(api, "/api/scans", b'{"refresh": ' + constant + b"}", "application/json")

    refused(answer, 400, "must be JSON")


# --- Size and framing -------------------------------------------------------------------------


def test_a_body_over_64_kb_gets_413_json(api):
    before = row_counts()

    answer = send(api, "/api/scans", b"{" + b" " * MAX_BODY_BYTES + b"}", "application/json")

    refused(answer, 413, f"at most {MAX_BODY_BYTES} bytes")
    assert row_counts() == before


def test_a_chunked_body_gets_411_not_served_as_an_empty_one(api):
    client, token = api
    before = row_counts()

    answer = client.generic(
        "POST",
        "/api/scans",
        b"",
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
        HTTP_TRANSFER_ENCODING="chunked",
    )

    refused(answer, 411, "Content-Length")
    assert row_counts() == before


# --- Bidi overrides in playlist names ---------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("namePattern", "{genre} \u202eskil\u202c"),
        ("namePattern", "\u2066{genre}\u2069"),
        ("namePattern", "\u202a{genre}"),
        ("description", "from my likes \u2067x"),
        ("description", "\u202dforced"),
    ],
)
def test_bidi_override_characters_in_names_and_descriptions_get_400(api, field, value):
    answer = send(
        api,
        "/api/playlists",
        json.dumps({"genres": ["jazz"], field: value}).encode(),
        "application/json",
    )

    refused(answer, 400, f"{field} must not contain bidirectional override characters")
    assert not PlaylistJob.objects.exists()


def test_right_to_left_text_without_overrides_is_a_fine_name(api):
    pattern = "{genre} \u05de\u05d4\u05dc\u05d9\u05d9\u05e7\u05d9\u05dd"  # Hebrew, no controls

    answer = send(
        api,
        "/api/playlists",
        json.dumps({"genres": ["jazz"], "namePattern": pattern}).encode(),
        "application/json",
    )

    assert answer.status_code == 202
    assert PlaylistJob.objects.get().name_pattern == pattern


# --- Draining unread bodies -------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [("POST", "/api/scans"), ("PUT", "/api/genres")])
def test_an_api_answer_given_before_the_body_mattered_reads_the_body_to_its_end(method, path):
    answer = Client().generic(method, path, b"x" * 200_000, content_type="application/json")

    assert answer.status_code in (401, 405)
    assert answer.wsgi_request.read() == b""


def request_with_body(size: int) -> Any:
    return RequestFactory().generic("POST", "/anything", b"y" * size, content_type="text/plain")


def test_the_drain_middleware_discards_what_a_view_left_unread():
    request = request_with_body(300_000)
    middleware = RequestBodyDrainMiddleware(lambda request: "answer")

    assert middleware(request) == "answer"
    assert request.read() == b""


def test_a_body_larger_than_the_drain_bound_is_not_read_at_all():
    huge = request_with_body(DRAIN_MAX_BYTES + 1)
    within = request_with_body(DRAIN_MAX_BYTES)

    assert request_body_drain(huge) == 0
    assert request_body_drain(within) == DRAIN_MAX_BYTES
    assert len(huge.read()) == DRAIN_MAX_BYTES + 1
