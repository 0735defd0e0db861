"""Exports people can use: each track's Spotify link, its artists', song and album names
beside the ids."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from genres.models import Artist, LibraryTrack
from tests.genres.test_pages import make_listener, make_result, signed_in
from tests.genres.test_pages_exports import csv_rows

pytestmark = pytest.mark.django_db

TRACK_A = "4uLU6hMCjMI75M1A2tKUQC"
TRACK_B = "7ouMYWpwJ422jRcDASZB7P"


TITLES = {TRACK_A: ("Dancing Queen", "Arrival"), TRACK_B: ("=cmd|' /C calc'!A0", "<b>&</b>")}


def library(user, tracks: dict[str, list[str]], artists: dict[str, str]) -> None:
    for position, (track_id, artist_ids) in enumerate(tracks.items()):
        name, album = TITLES.get(track_id, ("", ""))
        for source in ("liked", "playlist:abc"):  # the same song in two sources: read once
            LibraryTrack.objects.create(
                user=user,
                track_id=track_id,
                source=source,
                artist_ids=artist_ids,
                position=position,
                name=name,
                album=album,
            )
    for artist_id, name in artists.items():
        Artist.objects.create(spotify_id=artist_id, name=name, genres=[], fetched_at=timezone.now())


@pytest.fixture
def listener():
    user = make_listener()
    make_result(
        user,
        [("swedish pop", 2)],
        unclassified=1,
        tracks_per_genre={"swedish pop": [TRACK_A, TRACK_B], "": ["gone"]},
    )
    library(
        user,
        {TRACK_A: ["abba", "unknown-artist"], TRACK_B: ["robyn", "abba"]},
        {"abba": "ABBA", "robyn": "=Robyn, the artist"},
    )
    return user


def test_the_csv_has_each_tracks_spotify_link_and_artist_names(listener) -> None:
    rows = csv_rows(signed_in(listener).get("/genres/export.csv"))
    # The first five columns and their order stay; the names come after them.
    assert rows[0] == [
        "genre",
        "count",
        "track_id",
        "spotify_url",
        "artists",
        "track_name",
        "album_name",
    ]
    assert rows[1] == [
        "swedish pop",
        "2",
        TRACK_A,
        f"https://open.spotify.com/track/{TRACK_A}",
        "ABBA",  # an artist the cache does not know is left out, not shown as an id
        "Dancing Queen",
        "Arrival",
    ]
    # Artist names are anyone's text: one that starts a formula is quoted like a genre.
    assert rows[2][4] == "'=Robyn, the artist; ABBA"
    # A track of the result that the library no longer has still gets its link.
    assert rows[3] == [
        "(unclassified)",
        "1",
        "gone",
        "https://open.spotify.com/track/gone",
        "",
        "",
        "",
    ]


def test_the_json_has_a_tracks_map_with_links_and_artist_names(listener) -> None:
    data = json.loads(signed_in(listener).get("/genres/export.json").content)
    assert data["genres"][0]["trackIds"] == [TRACK_A, TRACK_B]  # the contract's keys stay
    assert data["tracks"] == {
        TRACK_A: {
            "url": f"https://open.spotify.com/track/{TRACK_A}",
            "artists": ["ABBA"],
            "name": "Dancing Queen",
            "album": "Arrival",
        },
        TRACK_B: {
            "url": f"https://open.spotify.com/track/{TRACK_B}",
            "artists": ["=Robyn, the artist", "ABBA"],
            "name": "=cmd|' /C calc'!A0",  # JSON is data, not a spreadsheet: no quote added
            "album": "<b>&</b>",
        },
        "gone": {
            "url": "https://open.spotify.com/track/gone",
            "artists": [],
            "name": "",
            "album": "",
        },
    }


def test_the_genres_only_csv_is_unchanged(listener) -> None:
    response = signed_in(listener).get("/genres/export.csv", {"detail": "genres"})
    assert csv_rows(response) == [["genre", "count"], ["swedish pop", "2"], ["(unclassified)", "1"]]


def test_the_names_cost_a_bounded_number_of_queries(
    listener, django_assert_max_num_queries
) -> None:
    client = signed_in(listener)
    with django_assert_max_num_queries(8):
        b"".join(client.get("/genres/export.csv").streaming_content)


def test_a_song_name_that_starts_a_formula_is_quoted_in_the_csv_and_markup_stays_text(
    listener,
) -> None:
    rows = csv_rows(signed_in(listener).get("/genres/export.csv"))
    assert rows[2][5:] == ["'=cmd|' /C calc'!A0", "<b>&</b>"]


def test_markup_in_names_never_appears_raw_in_the_json_download(listener) -> None:
    raw = signed_in(listener).get("/genres/export.json").content
    # Opened in a browser or pasted into a page, the download stays inert text...
    for markup in (b"<", b">", b"&"):
        assert markup not in raw
    # ...and a JSON reader still gets the name exactly as Spotify gave it.
    assert json.loads(raw)["tracks"][TRACK_B]["album"] == "<b>&</b>"


def test_a_song_in_two_sources_takes_its_names_from_the_source_that_has_them(listener) -> None:
    # A row stored before names were kept has none; the song's other row has them.
    LibraryTrack.objects.filter(track_id=TRACK_A, source="liked").update(name="", album="")
    LibraryTrack.objects.filter(track_id=TRACK_A, source="playlist:abc").update(
        name="Dancing Queen (Live)", album="ABBA Live"
    )
    data = json.loads(signed_in(listener).get("/genres/export.json").content)
    assert data["tracks"][TRACK_A]["name"] == "Dancing Queen (Live)"
    assert data["tracks"][TRACK_A]["album"] == "ABBA Live"
