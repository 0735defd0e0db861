"""No `<`, `>` or `&` of a hostile name reaches a listener raw: not in the API's JSON, not in
the pages; the CSV export keeps names exact but is served so that nothing renders it.

Each `<`, `>` and `&` of the names below follows a marker of its own (one that appears
nowhere else in a page or answer), so the test reads, for every place a name landed, exactly
what stands where its `<`, `>` or `&` was: the escape of that character, and nothing else. A
name that is already escaped (`&lt;`) must be escaped again, not taken for markup.
"""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.contrib.auth import get_user_model

from genres.models import PlaylistJob, SpotifyAccount
from tests.genres.test_pages import make_listener, make_result, signed_in

pytestmark = pytest.mark.django_db

LT, GT, AMP = "\u2603", "\u2602", "\u2601"  # ☃ before each <, ☂ before each >, ☁ before each &


def marked(name: str) -> str:
    return name.replace("&", f"{AMP}&").replace("<", f"{LT}<").replace(">", f"{GT}>")


HOSTILE = tuple(
    marked(name)
    for name in (
        "<script>alert(1)</script>",
        '"><img src=x onerror=alert(1)>',
        "rock & roll",
        "&lt;b&gt;already escaped&lt;/b&gt;",
        "a<b>c</b>d & e",
    )
)
HTML_ESCAPES = {LT: "&lt;", GT: "&gt;", AMP: "&amp;"}
JSON_ESCAPES = {LT: "\\u003c", GT: "\\u003e", AMP: "\\u0026"}


def assert_escaped(body: str, escapes: dict[str, str], *, at_least: int) -> None:
    """Every marker in ``body`` is followed by the escape of its character; ``at_least``
    markers were found (the names were shown at all)."""
    found = 0
    for marker, escape in escapes.items():
        # As is, or as JSON writes it with ensure_ascii (\u2603).
        json_spelling = "\\u" + f"{ord(marker):04x}"
        spelled = f"{re.escape(marker)}|{re.escape(json_spelling)}"
        for match in re.finditer(spelled, body):
            found += 1
            after = body[match.end() : match.end() + len(escape)]
            assert after == escape, f"raw {body[match.start() : match.end() + 12]!r}"
    assert found >= at_least, f"only {found} escaped characters of hostile names shown"


def markers_in(names: tuple[str, ...]) -> int:
    return sum(name.count(marker) for name in names for marker in (LT, GT, AMP))


@pytest.fixture
def listener():
    user = make_listener()
    make_result(user, [(name, 3 + index) for index, name in enumerate(HOSTILE)])
    return user


def test_the_genres_api_escapes_every_character_of_hostile_names(listener) -> None:
    response = signed_in(listener).get("/api/genres")

    body = response.content.decode()
    assert_escaped(body, JSON_ESCAPES, at_least=markers_in(HOSTILE))
    assert not set("<>&") & set(body)
    assert {genre["name"] for genre in json.loads(body)["genres"]} == set(HOSTILE)


def test_a_playlist_job_answer_escapes_hostile_genre_names(listener) -> None:
    job = PlaylistJob.objects.create(user=listener, genres=list(HOSTILE))

    response = signed_in(listener).get(f"/api/playlist-jobs/{job.pk}")

    body = response.content.decode()
    assert_escaped(body, JSON_ESCAPES, at_least=markers_in(HOSTILE))
    assert not set("<>&") & set(body)


def test_the_genres_page_escapes_every_character_of_hostile_names(listener) -> None:
    response = signed_in(listener).get("/genres")

    # Each name is shown as text and kept as a checkbox value: twice at least.
    assert_escaped(response.content.decode(), HTML_ESCAPES, at_least=2 * markers_in(HOSTILE))


def test_the_home_page_escapes_a_hostile_display_name() -> None:
    user = get_user_model().objects.create_user("mallory")
    name = marked('<script>alert("x")</script> & friends')
    SpotifyAccount.objects.create(user=user, spotify_id="mallory", display_name=name)

    response = signed_in(user).get("/")

    assert_escaped(response.content.decode(), HTML_ESCAPES, at_least=markers_in((name,)))


def test_the_csv_export_keeps_hostile_names_exact_and_is_never_rendered(listener) -> None:
    # CSV has no escape for `<` or `&`: a spreadsheet must get the names as they are. What
    # keeps them inert is how the file is served: a download, of a type no browser renders.
    response = signed_in(listener).get("/genres/export.csv")

    body = b"".join(response.streaming_content).decode("utf-8").removeprefix("\ufeff")
    names = {row[0] for row in list(csv.reader(io.StringIO(body)))[1:]}
    assert names == set(HOSTILE)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"


def test_the_json_export_escapes_every_character_of_hostile_names(listener) -> None:
    response = signed_in(listener).get("/genres/export.json")

    body = response.content.decode()
    assert_escaped(body, JSON_ESCAPES, at_least=markers_in(HOSTILE))
    assert {genre["name"] for genre in json.loads(body)["genres"]} == set(HOSTILE)
