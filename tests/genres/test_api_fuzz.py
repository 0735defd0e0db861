"""Property-based: whatever a client sends to any /api/ endpoint (found from the URL
configuration, so a new one is covered without being listed here) gets a 4xx JSON answer with
a message or a success, never a 500, and a refused request changes no row. The OAuth callback,
whatever its query string, answers 302 to ``/?error=<key>`` (or 405 for another method).

The run is bounded (``api-fuzz`` profile: a fixed number of examples per endpoint, no
deadline, no example database); ``SWEDIFY_FUZZ_EXAMPLES`` raises it for a longer local hunt.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genres import spotify
from genres.views import MAX_BODY_BYTES, MAX_JSON_DEPTH
from swedify.cache import cache_clear_own
from tests.genres.test_api_inputs import GENRES, listener_with_genres, row_counts, strict_client

pytestmark = pytest.mark.django_db

settings.register_profile(
    "api-fuzz",
    max_examples=int(os.environ.get("SWEDIFY_FUZZ_EXAMPLES", "100")),
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[
        # The signed-in client is made once per test and every example rolls back its rows.
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
FUZZ = settings(settings.get_profile("api-fuzz"))

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "application/merge-patch+json",
    "text/plain",
    "text/html",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=fuzz",
    "multipart/form-data",
    "application/xml",
    "application/json; charset",
    'application/json; charset="utf-8"',
    "application/json; charset=no-such-codec",
    "",
]
ERROR_KEYS = {"spotify_denied", "invalid_state", "invalid_request", "spotify_auth_failed"}
# Characters that broke or could break storage or display: lone surrogates, NUL, bidi
# overrides and isolates, a byte order mark, right-to-left marks, the name placeholder.
SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff"]
SPECIAL = [
    *SURROGATES,
    "\x00",
    "\u202a",
    "\u202e",
    "\u2066",
    "\u2069",
    "\ufeff",
    "\u200f",
    "\u0085",
    "{genre}",
    "\\",
    '"',
]


# --- Endpoints --------------------------------------------------------------------------------


def api_routes() -> list[str]:
    """Every route of the URL configuration under /api/, as written (``<str:id>`` kept)."""
    routes: list[str] = []

    def walk(patterns: list[Any], prefix: str) -> None:
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, route)
            elif isinstance(entry, URLPattern) and route.lstrip("^").startswith("api/"):
                routes.append(route)

    walk(get_resolver().url_patterns, "")
    return routes


ROUTES = api_routes()
PARAMETER = re.compile(r"<(?:\w+:)?\w+>|\(\?P<\w+>[^)]*\)")


def test_the_fuzzed_routes_include_every_known_endpoint():
    """Not vacuous: discovery finds the endpoints the contract lists, and the catch-all."""
    assert {"api/scans", "api/scans/<str:scan_id>", "api/genres", "api/playlists"} <= set(ROUTES)
    assert "api/playlist-jobs/<str:job_id>" in ROUTES
    assert any(route.startswith("^api/") for route in ROUTES)


character = st.one_of(st.characters(), st.sampled_from(SPECIAL), st.sampled_from(SURROGATES))
text = st.lists(character, max_size=40).map("".join)
nonempty_text = st.lists(character, min_size=1, max_size=12).map("".join)
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=25,
)
# Valid bodies of the endpoints that take one; the fuzzer changes one or two fields of these,
# so that every check of the endpoint, and the database write behind them, is reached.
VALID = {
    "api/scans": {"sources": ["liked"], "refresh": True},
    "api/playlists": {
        "genres": sorted(GENRES),
        "namePattern": "{genre} (from Likes)",
        "description": "Made by Swedify",
        "skipDuplicates": True,
    },
}
ANY_VALID = {key: value for body in VALID.values() for key, value in body.items()}


@st.composite
def field_values(draw: st.DrawFn, valid: Any) -> Any:
    """A replacement for a field whose valid value is ``valid``: text slipped into it, any
    JSON, or a list of the valid items with strangers among them."""
    if isinstance(valid, str):
        at = draw(st.integers(0, len(valid)))
        inside = valid[:at] + draw(nonempty_text) + valid[at:]
        return draw(st.one_of(st.just(inside), st.just(inside), text, json_value))
    if isinstance(valid, list):
        items = st.one_of(st.sampled_from(valid), text, json_value)
        return draw(st.one_of(st.lists(items, max_size=5), json_value))
    return draw(json_value)


@st.composite
def mutated(draw: st.DrawFn, route: str) -> dict[str, Any]:
    """A valid body of ``route`` (or of any endpoint) with one or two fields changed, removed
    or added."""
    valid = VALID.get(route, ANY_VALID)
    body = dict(valid)
    for _ in range(draw(st.integers(1, 2))):
        # Mostly the endpoint's own fields; now and then one it does not know.
        field = draw(st.sampled_from([*sorted(valid), None])) or draw(text)
        if draw(st.integers(0, 4)) == 0:
            body.pop(field, None)
        else:
            body[field] = draw(field_values(valid.get(field, ANY_VALID.get(field))))
    return body


@st.composite
def bodies(draw: st.DrawFn, route: str) -> bytes:
    """A request body: a valid one changed, any JSON, deep nesting, an edge size, or bytes."""
    kind = draw(st.sampled_from(["mutated", "mutated", "any", "nested", "sized", "bytes", "empty"]))
    if kind in ("mutated", "any"):
        value = draw(mutated(route) if kind == "mutated" else json_value)
        if draw(st.integers(0, 3)):
            return json.dumps(value).encode()  # a surrogate as a \ud800 escape
        # Raw text: a lone surrogate becomes bytes that are not UTF-8.
        return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    if kind == "nested":
        depth = draw(st.one_of(st.integers(1, MAX_JSON_DEPTH + 2), st.integers(1, 30_000)))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        return ('{"sources":' + opener * depth + "1" + closer * depth + "}").encode()
    if kind == "sized":
        size = draw(st.sampled_from([MAX_BODY_BYTES, MAX_BODY_BYTES + 1, 200_000]))
        return b'{"description": "' + b"x" * (size - 19) + b'"}'
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    return b""


def fill(route: str, segment: str) -> str:
    """A request path for ``route`` with ``segment`` (percent-encoded) for its parameter."""
    encoded = quote(segment.encode("utf-8", "surrogatepass"), safe="")
    return "/" + PARAMETER.sub(encoded, route.lstrip("^").rstrip("$"))


# --- The property -----------------------------------------------------------------------------


@pytest.fixture
def signed_in(db: Any) -> tuple[Client, str]:
    """alice, with genres from a successful scan; her client raises any server exception."""
    return strict_client(listener_with_genres())


def assert_answer_is_safe(answer: Any, method: str, before: dict[str, int]) -> None:
    assert answer.status_code < 500, answer.content[:300]
    assert not 300 <= answer.status_code < 400, "the API never redirects"
    if answer.status_code >= 400:
        if method != "HEAD":
            assert answer["Content-Type"] == "application/json", answer["Content-Type"]
            message = answer.json()["error"]
            assert isinstance(message, str)
            assert message.strip()
        assert row_counts() == before, "a refused request changed rows"


@pytest.mark.parametrize("route", ROUTES)
@FUZZ
@given(
    data=st.data(),
    # Weighted towards a signed, JSON-typed write, which gets furthest into the endpoint.
    method=st.one_of(st.just("POST"), st.sampled_from(METHODS)),
    content_type=st.one_of(
        st.just("application/json"),
        st.sampled_from(CONTENT_TYPES),
        st.builds("application/json; {}".format, st.text(max_size=20)),
        st.text(max_size=30),
    ),
    with_token=st.one_of(st.just(True), st.booleans()),
    segment=st.one_of(text, st.uuids().map(str)),
)
def test_any_request_to_any_api_endpoint_gets_json_4xx_or_success_never_500(
    signed_in, route, data, method, content_type, with_token, segment
):
    client, token = signed_in
    body = data.draw(bodies(route))
    # Given explicitly: the test client leaves the type out when the body is empty.
    extra = {"CONTENT_TYPE": content_type}
    if with_token:
        extra["HTTP_X_CSRFTOKEN"] = token
    cache_clear_own()  # abuse limits would otherwise answer 429 before the input is read
    with transaction.atomic():
        before = row_counts()

        answer = client.generic(method, fill(route, segment), body, content_type, **extra)

        assert_answer_is_safe(answer, method, before)
        transaction.set_rollback(True)


@pytest.mark.parametrize("route", ["api/scans", "api/playlists"])
@FUZZ
@given(data=st.data())
def test_any_json_a_signed_in_listener_posts_gets_json_4xx_or_success(signed_in, route, data):
    """The same property with only well-framed JSON posts, so every example reaches the
    endpoint's own validation and, when it passes, the database."""
    client, token = signed_in
    body = json.dumps(data.draw(st.one_of(mutated(route), mutated(route), json_value)))
    cache_clear_own()
    with transaction.atomic():
        before = row_counts()

        answer = client.post(
            f"/{route}", body, content_type="application/json", HTTP_X_CSRFTOKEN=token
        )

        assert_answer_is_safe(answer, "POST", before)
        transaction.set_rollback(True)


# --- The OAuth callback -----------------------------------------------------------------------

query_key = st.one_of(st.sampled_from(["code", "state", "error", "error_description", "iss"]), text)
query_value = st.one_of(
    text, st.sampled_from(["access_denied", "%zz", "%ff%fe", "%00", "a" * 3000])
)


@st.composite
def query_strings(draw: st.DrawFn, state: str | None) -> str:
    pairs = draw(st.lists(st.tuples(query_key, query_value), max_size=6))
    at = draw(st.integers(0, len(pairs)))
    if state is not None:
        pairs.insert(at, ("state", state))
    if draw(st.booleans()):
        pairs.append(("code", draw(text)))
    raw = draw(st.booleans())

    def encode(part: str) -> str:
        # Raw: already-encoded junk (%zz) passes through as the client wrote it.
        return part if raw else quote(part.encode("utf-8", "surrogatepass"), safe="")

    return "&".join(f"{encode(key)}={encode(value)}" for key, value in pairs)


@pytest.fixture
def refused_code_exchange(monkeypatch: Any) -> None:
    """No network: Spotify refuses every code the fuzzer invents, as it would."""

    def refuse(self: Any, **kwargs: Any) -> Any:
        raise spotify.InvalidGrant("invalid_grant", status=400)

    monkeypatch.setattr(spotify.SpotifyAccounts, "exchange_code", refuse)


@FUZZ
@given(data=st.data(), method=st.sampled_from(["GET", "HEAD", "POST", "PUT"]), real=st.booleans())
def test_any_oauth_callback_query_gets_a_302_to_an_error_key_never_500(
    db, refused_code_exchange, data, method, real
):
    cache_clear_own()  # the sign-in limit per address is not what this test is about
    client = Client()
    state = None
    if real:
        # A sign-in in progress, and its state among what the fuzzer sends.
        start = client.get("/auth/spotify")
        assert start.status_code == 302
        state = parse_qs(urlsplit(start["Location"]).query)["state"][0]
    query = data.draw(query_strings(state))
    before = row_counts()

    answer = client.generic(method, "/auth/spotify/callback", QUERY_STRING=query)

    assert answer.status_code in (302, 405), answer.status_code
    if answer.status_code == 302:
        location = urlsplit(answer["Location"])
        assert location.path == "/"
        assert location.query.startswith("error=")
        assert location.query.removeprefix("error=") in ERROR_KEYS
    assert row_counts() == before
