"""The genres page's downloads in a real browser, in English and Swedish: a CSV and a JSON
file with each track's song, artist and album names and Spotify link beside the genre counts,
hostile names inert (no live spreadsheet formula, no markup), and the page left where it was."""

from __future__ import annotations

import csv
import json
from collections import Counter
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from genres.models import Artist, LibraryTrack
from genres.pages import CSV_UNCLASSIFIED
from tests.genres.test_pages import make_listener, make_result

pytestmark = pytest.mark.browser

FORMULA = '=HYPERLINK("http://evil")'
GENRES = [("swedish pop", 3), ("indie rock", 2), (FORMULA, 1)]
# Per genre, its tracks; every track is in the listener's library with its artists.
TRACKS = {
    "swedish pop": ["4uLU6hMCjMI75M1A2tKUQC", "0VjIjW4GlUZAMYd2vXMi3b", "3n3Ppam7vgaVa1iaRUc9Lp"],
    "indie rock": ["7ouMYWpwJ422jRcDASZB7P", "4uLU6hMCjMI75M1A2tKUQC"],
    FORMULA: ["1301WleyT98MSxVHPZCA6M"],
    "": ["5ghIJDpPoe3CfHMGu71E6T"],
}
ARTISTS = {"a1": "Robyn", "a2": "Kent, the band", "a3": "+46 Elektro", "a4": "<b>Bold</b>"}
# Song and album names, as a scan stored them (one track has none yet).
TRACK_TITLES = {
    "4uLU6hMCjMI75M1A2tKUQC": ("Dancing On My Own", "Body Talk"),
    "0VjIjW4GlUZAMYd2vXMi3b": ("Håll om mig", "Ända hit, tillsammans"),
    "3n3Ppam7vgaVa1iaRUc9Lp": ("=SUM(A1:A9)", "@home"),
    "7ouMYWpwJ422jRcDASZB7P": ("Indie, Rock & Roll", "Single"),
    "1301WleyT98MSxVHPZCA6M": ("<i>Italic</i>", "<b>Album</b>"),
    "5ghIJDpPoe3CfHMGu71E6T": ("", ""),
}
TRACK_ARTISTS = {
    "4uLU6hMCjMI75M1A2tKUQC": ["a1"],
    "0VjIjW4GlUZAMYd2vXMi3b": ["a1", "a2"],
    "3n3Ppam7vgaVa1iaRUc9Lp": ["a2"],
    "7ouMYWpwJ422jRcDASZB7P": ["a3"],
    "1301WleyT98MSxVHPZCA6M": ["a4"],
    "5ghIJDpPoe3CfHMGu71E6T": [],
}


def listener_with_library() -> Any:
    user = make_listener()
    make_result(user, GENRES, unclassified=1, tracks_per_genre=TRACKS)
    now = timezone.now()
    for spotify_id, name in ARTISTS.items():
        Artist.objects.create(spotify_id=spotify_id, name=name, genres=[], fetched_at=now)
    for position, (track_id, artist_ids) in enumerate(TRACK_ARTISTS.items()):
        name, album = TRACK_TITLES[track_id]
        LibraryTrack.objects.create(
            user=user,
            track_id=track_id,
            source="liked",
            artist_ids=artist_ids,
            position=position,
            name=name,
            album=album,
        )
    return user


@pytest.mark.parametrize("language", ["en", "sv"])
def test_the_csv_download_names_each_song_artist_and_album_with_its_link_and_no_formula(
    listener_browser: Any, language: str
) -> None:
    page, _ = listener_browser.open("/genres", language=language, user=listener_with_library())
    expect(page.locator("body[data-ready=true]")).to_have_count(1)
    with page.expect_download() as download_info:
        page.locator("a[href='/genres/export.csv']").click()
    download = download_info.value
    assert download.suggested_filename.startswith("swedify-genres-")
    assert download.suggested_filename.endswith(".csv")
    with open(download.path(), encoding="utf-8-sig", newline="") as file:
        header, *rows = list(csv.reader(file))

    # The first columns stay what they were; the new ones come after them.
    assert header[:3] == ["genre", "count", "track_id"]
    column = {name: index for index, name in enumerate(header)}
    assert {"spotify_url", "artists", "track_name", "album_name"} <= set(column)
    by_track = {(row[0], row[column["track_id"]]): row for row in rows}
    expected_genres = {"swedish pop": 3, "indie rock": 2, "'" + FORMULA: 1, CSV_UNCLASSIFIED: 1}
    assert Counter(row[0] for row in rows) == expected_genres
    assert {row[0]: int(row[1]) for row in rows} == expected_genres

    kent = by_track[("swedish pop", "0VjIjW4GlUZAMYd2vXMi3b")]
    assert kent[column["spotify_url"]] == ("https://open.spotify.com/track/0VjIjW4GlUZAMYd2vXMi3b")
    assert kent[column["artists"]] == "Robyn; Kent, the band"
    assert (kent[column["track_name"]], kent[column["album_name"]]) == (
        "Håll om mig",
        "Ända hit, tillsammans",
    )
    # Song and album names that a spreadsheet would run as formulas are quoted too.
    sums = by_track[("swedish pop", "3n3Ppam7vgaVa1iaRUc9Lp")]
    assert (sums[column["track_name"]], sums[column["album_name"]]) == ("'=SUM(A1:A9)", "'@home")
    # An artist name that a spreadsheet would run as a formula is quoted, like genre names.
    assert by_track[("indie rock", "7ouMYWpwJ422jRcDASZB7P")][column["artists"]] == ("'+46 Elektro")
    unknown = by_track[(CSV_UNCLASSIFIED, "5ghIJDpPoe3CfHMGu71E6T")]
    assert unknown[column["spotify_url"]].endswith("/track/5ghIJDpPoe3CfHMGu71E6T")
    assert unknown[column["track_name"]] == ""
    assert page.url == f"{listener_browser.base_url}/genres"  # a download, not a navigation


@pytest.mark.parametrize("language", ["en", "sv"])
def test_the_json_download_is_the_api_answer_plus_each_tracks_names_and_link(
    listener_browser: Any, language: str
) -> None:
    page, _ = listener_browser.open("/genres", language=language, user=listener_with_library())
    expect(page.locator("body[data-ready=true]")).to_have_count(1)
    with page.expect_download() as download_info:
        page.locator("a[href='/genres/export.json']").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".json")
    with open(download.path(), encoding="utf-8") as file:
        text = file.read()
    assert "<b>" not in text  # names stay inert if the file is opened in a browser
    exported = json.loads(text)

    api = page.request.get(f"{listener_browser.base_url}/api/genres").json()
    tracks = exported.pop("tracks")
    assert exported == api
    assert set(tracks) == set(TRACK_ARTISTS)
    assert tracks["0VjIjW4GlUZAMYd2vXMi3b"] == {
        "url": "https://open.spotify.com/track/0VjIjW4GlUZAMYd2vXMi3b",
        "artists": ["Robyn", "Kent, the band"],
        "name": "Håll om mig",
        "album": "Ända hit, tillsammans",
    }
    hostile = tracks["1301WleyT98MSxVHPZCA6M"]
    assert (hostile["artists"], hostile["name"], hostile["album"]) == (
        ["<b>Bold</b>"],
        "<i>Italic</i>",
        "<b>Album</b>",
    )
    assert page.url == f"{listener_browser.base_url}/genres"
