"""Song and album names through the library upsert: on PostgreSQL its COPY-and-merge path (CI
runs the suite there, as tests/test_postgresql_paths.py explains), elsewhere bulk_create."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model

from genres.library import LibraryRow, library_rows_upsert
from genres.models import LibraryTrack
from genres.track_names import NAME_MAX_LENGTH, clean_name
from tests.genres.test_pages import make_listener, make_result, signed_in

pytestmark = pytest.mark.django_db

ADDED = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
# What COPY's text format and SQL quoting must carry through untouched.
TRICKY = 'O\'Brien \\N \\t "quoted" <b>&amp;</b> =1+1 日本のロック 🎸'


def row(user_id: int, track_id: str, name: str, album: str, *, position: int = 0) -> LibraryRow:
    return LibraryRow(
        user_id, "liked", track_id, [f"artist-of-{track_id}"], ADDED, position, None, name, album
    )


def names(user_id: int) -> dict[str, tuple[str, str]]:
    rows = LibraryTrack.objects.filter(user_id=user_id).values_list("track_id", "name", "album")
    return {track_id: (name, album) for track_id, name, album in rows}


def test_the_upsert_stores_names_with_quotes_backslashes_and_any_script() -> None:
    user = get_user_model().objects.create_user("names")
    longest = clean_name("ö" * (NAME_MAX_LENGTH + 1))

    library_rows_upsert(
        rows=[
            row(user.pk, "t1", TRICKY, "Arrival"),
            row(user.pk, "t2", longest, longest, position=1),
            row(user.pk, "t3", "", "", position=2),
        ]
    )

    assert names(user.pk) == {
        "t1": (TRICKY, "Arrival"),
        "t2": ("ö" * NAME_MAX_LENGTH, "ö" * NAME_MAX_LENGTH),  # fits the column exactly
        "t3": ("", ""),
    }


def test_a_row_stored_without_names_gets_them_when_a_read_sees_it_again() -> None:
    user = get_user_model().objects.create_user("names")
    scan = uuid.uuid4()
    library_rows_upsert(rows=[row(user.pk, "t1", "", "")])

    library_rows_upsert(
        rows=[row(user.pk, "t1", "Dancing Queen", "Arrival")._replace(seen_scan=scan)]
    )

    track = LibraryTrack.objects.get(user_id=user.pk, track_id="t1")
    assert (track.name, track.album, track.seen_scan) == ("Dancing Queen", "Arrival", scan)
    assert LibraryTrack.objects.filter(user_id=user.pk).count() == 1


def test_a_renamed_song_takes_its_new_name_and_other_listeners_keep_theirs() -> None:
    user = get_user_model().objects.create_user("names")
    other = get_user_model().objects.create_user("other")
    library_rows_upsert(rows=[row(user.pk, "t1", "Demo", "Tapes"), row(other.pk, "t1", "Demo", "")])

    library_rows_upsert(rows=[row(user.pk, "t1", "Song (2019 Remaster)", "Greatest Hits")])

    assert names(user.pk) == {"t1": ("Song (2019 Remaster)", "Greatest Hits")}
    assert names(other.pk) == {"t1": ("Demo", "")}


def test_names_written_by_the_upsert_reach_both_exports() -> None:
    user = make_listener()
    make_result(user, [("swedish pop", 1)], tracks_per_genre={"swedish pop": ["t1"]})
    library_rows_upsert(rows=[row(user.pk, "t1", TRICKY, "=SUM(A1)")])
    client = signed_in(user)

    tracks = json.loads(client.get("/genres/export.json").content)["tracks"]
    body = b"".join(client.get("/genres/export.csv").streaming_content).decode("utf-8")

    assert (tracks["t1"]["name"], tracks["t1"]["album"]) == (TRICKY, "=SUM(A1)")
    assert body.splitlines()[1].endswith(f'"{TRICKY.replace(chr(34), 2 * chr(34))}",\'=SUM(A1)')
