"""Scans against the Spotify sandbox over HTTP store each song's and album's name, and the
exports carry them, hostile ones included."""

from __future__ import annotations

import json
from typing import Any

import pytest

from genres import ratelimit
from genres.models import LibraryTrack
from sandbox import webapi
from tests.genres.test_pages_exports import csv_rows
from tests.genres.test_scan_sandbox import scan_to_end

pytestmark = [pytest.mark.django_db, pytest.mark.integration]

HOSTILE_NAME = '=HYPERLINK("http://x")<script>&amp;\x00\r\nnext'
HOSTILE_ALBUM = '<b>Ödmjuk & "Quoted"</b>\t' + "å" * 600


@pytest.fixture(autouse=True)
def _fresh_limiter() -> None:
    ratelimit._limiters.clear()


def sandbox_names(sandbox: Any, track_ids: list[str]) -> dict[str, tuple[str, str]]:
    tracks = {track_id: sandbox.state.find_track(track_id) for track_id in track_ids}
    return {track_id: (track.name, track.album_name) for track_id, track in tracks.items()}


def test_a_scan_stores_every_songs_and_albums_name_as_the_sandbox_has_them(
    listener, spotify_at_sandbox, enqueued
) -> None:
    sandbox = spotify_at_sandbox
    road_trip = next(p for p in sandbox.playlists("listener") if p["name"] == "Road trip")
    sources = ["liked", f"playlist:{road_trip['id']}"]

    assert scan_to_end(listener, sources=sources)["status"] == "succeeded"

    for source in sources:
        stored = dict(
            (track_id, (name, album))
            for track_id, name, album in LibraryTrack.objects.filter(source=source).values_list(
                "track_id", "name", "album"
            )
        )
        assert len(stored) > 10
        assert all(name and album for name, album in stored.values())
        assert stored == sandbox_names(sandbox, list(stored))


def test_new_likes_read_by_an_incremental_rescan_get_their_names(
    listener, spotify_at_sandbox, enqueued
) -> None:
    sandbox = spotify_at_sandbox
    assert scan_to_end(listener)["status"] == "succeeded"
    known = set(LibraryTrack.objects.values_list("track_id", flat=True))
    sandbox.add_likes("listener", 3)

    assert scan_to_end(listener, refresh=True)["status"] == "succeeded"

    new = LibraryTrack.objects.exclude(track_id__in=known)
    stored = {track.track_id: (track.name, track.album) for track in new}
    assert len(stored) == 3
    assert stored == sandbox_names(sandbox, list(stored))


def test_a_hostile_song_name_from_spotify_is_stored_clean_and_exported_inert(
    listener, spotify_at_sandbox, enqueued, monkeypatch
) -> None:
    hostile_id: list[str] = []
    real_track_json = webapi.track_json

    def hostile_first_track(track: Any, api: str) -> dict[str, Any]:
        data = real_track_json(track, api)
        if not hostile_id or hostile_id[0] == track.id:
            hostile_id[:] = [track.id]
            data = {**data, "name": HOSTILE_NAME, "album": {**data["album"], "name": HOSTILE_ALBUM}}
        return data

    monkeypatch.setattr(webapi, "track_json", hostile_first_track)

    assert scan_to_end(listener)["status"] == "succeeded"

    (track_id,) = hostile_id
    row = LibraryTrack.objects.get(track_id=track_id)
    assert row.name == '=HYPERLINK("http://x")<script>&amp; next'
    assert row.album == ('<b>Ödmjuk & "Quoted"</b> ' + "å" * 600)[:512]

    raw = listener.get("/genres/export.json").content
    for markup in (b"<", b">", b"&"):
        assert markup not in raw
    assert json.loads(raw)["tracks"][track_id]["name"] == row.name

    rows = [r for r in csv_rows(listener.get("/genres/export.csv")) if r[2] == track_id]
    assert rows
    for csv_row in rows:
        assert csv_row[5:] == ["'" + row.name, row.album]  # the formula is quoted, once
