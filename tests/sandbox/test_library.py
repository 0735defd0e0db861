"""Seeded libraries: deterministic, shareable, consistent with the truth, any size."""

from __future__ import annotations

import json
import time
from datetime import datetime

from sandbox.genres import FAMILIES, HOSTILE, NON_ASCII, VOCABULARY
from sandbox.library import Catalog
from sandbox.testing import RunningSandbox, running_sandbox
from tests.sandbox.conftest import Api, sign_in

SPEC = {
    "id": "twin",
    "tracks": 180,
    "artists": 60,
    "artist_offset": 1000,
    "playlists": [{"name": "Mine", "tracks": 10}],
}


def _library(api: Api) -> list[dict]:
    return api.all_pages("/me/tracks?limit=50")


def _artist_ids(items: list[dict]) -> set[str]:
    return {
        a["id"] for i in items if i["track"] and i["track"]["id"] for a in i["track"]["artists"]
    }


def test_the_same_spec_gives_the_same_library() -> None:
    libraries = []
    for _ in range(2):
        with running_sandbox() as sandbox:
            sandbox.create_user(SPEC)
            api = sign_in(sandbox, "twin")
            # Hrefs carry the port, which differs between the two sandboxes.
            items = json.dumps(_library(api)).replace(sandbox.url, "")
            libraries.append((items, sandbox.truth("twin"), sandbox.playlists("twin")))
    (items_a, truth_a, playlists_a), (items_b, truth_b, playlists_b) = libraries
    assert items_a == items_b
    assert truth_a == truth_b
    assert [p["id"] for p in playlists_a] == [p["id"] for p in playlists_b]


def test_another_seed_gives_another_library() -> None:
    ids = []
    for seed in ("one", "two"):
        with running_sandbox(seed=seed) as sandbox:
            sandbox.create_user(SPEC)
            truth = sandbox.truth("twin")
            ids.append({t for tracks in truth["genres"].values() for t in tracks})
    assert ids[0].isdisjoint(ids[1])


def test_users_with_overlapping_slices_share_artists(sandbox: RunningSandbox) -> None:
    sandbox.create_user({"id": "ann", "tracks": 200, "artists": 100, "artist_offset": 5000})
    sandbox.create_user({"id": "bob", "tracks": 200, "artists": 100, "artist_offset": 5050})
    ann = _artist_ids(_library(sign_in(sandbox, "ann")))
    bob = _artist_ids(_library(sign_in(sandbox, "bob")))
    shared = ann & bob
    # Each covers its whole slice, so they share exactly the 50 artists of the overlap.
    assert 40 <= len(shared) <= 60
    assert len(shared) < len(ann)


def test_the_truth_matches_what_the_api_serves(sandbox: RunningSandbox) -> None:
    api = sign_in(sandbox, "listener")
    items = _library(api)
    genres_of = {}
    for artist_id in _artist_ids(items):
        answer = api.get(f"/artists/{artist_id}")
        assert answer.status == 200
        genres_of[artist_id] = answer.json()["genres"]
    expected: dict[str, set[str]] = {}
    unclassified = set()
    for item in items:
        track = item["track"]
        if track is None or track["id"] is None:
            continue
        names = {g for a in track["artists"] for g in genres_of[a["id"]]}
        for name in names:
            expected.setdefault(name, set()).add(track["id"])
        if not names:
            unclassified.add(track["id"])
    truth = sandbox.truth("listener")
    assert truth["genres"] == {name: sorted(ids) for name, ids in sorted(expected.items())}
    assert truth["unclassified"] == sorted(unclassified)
    assert truth["totalTracks"] == len({i["track"]["id"] for i in items if i["track"]} - {None})
    assert unclassified, "the default listener should have unclassified tracks"


def test_the_default_listener_meets_hostile_and_non_ascii_genres(sandbox: RunningSandbox) -> None:
    genres = set(sandbox.truth("listener")["genres"])
    assert set(HOSTILE) <= genres
    assert set(NON_ASCII) <= genres


def test_the_vocabulary_is_large_and_has_families_qualifiers_and_oddities() -> None:
    assert len(VOCABULARY) >= 1200
    assert len(set(VOCABULARY)) == len(VOCABULARY)
    for name in ("rock", "pop", "hip hop", "r&b", "swedish pop", "indie rock", "j-pop"):
        assert name in VOCABULARY
    assert set(FAMILIES) <= set(VOCABULARY)
    assert "<script>alert(1)</script>" in VOCABULARY
    assert max(len(name) for name in VOCABULARY) > 200


def test_about_a_tenth_of_artists_have_no_genres() -> None:
    catalog = Catalog("swedify")
    artists = [catalog.artist(i) for i in range(3000)]
    share = sum(not a.genres for a in artists) / len(artists)
    assert 0.06 <= share <= 0.14
    assert max(len(a.genres) for a in artists) == 3


def test_new_likes_arrive_at_the_front_with_new_artists(sandbox: RunningSandbox) -> None:
    api = sign_in(sandbox, "listener")
    before = _library(api)
    old_artists = _artist_ids(before)
    added = sandbox.add_likes("listener", count=10, new_artists=3)
    assert added["total"] == 610
    after = _library(api)
    assert len(after) == 610
    assert after[10:] == before
    assert [i["track"]["id"] for i in after[:10]] == [t["id"] for t in reversed(added["added"])]
    dates = [datetime.fromisoformat(i["added_at"]) for i in after]
    assert dates == sorted(dates, reverse=True)
    new_ids = {a["id"] for a in added["new_artists"]}
    assert len(new_ids) == 3
    assert new_ids.isdisjoint(old_artists)
    assert new_ids <= _artist_ids(after[:10])
    for artist_id in new_ids:
        assert api.get(f"/artists/{artist_id}").status == 200


def test_a_50000_track_user_is_cheap_and_pages_correctly(sandbox: RunningSandbox) -> None:
    started = time.monotonic()
    sandbox.create_user({"id": "huge", "tracks": 50_000, "artists": 12_000})
    assert time.monotonic() - started < 1.0
    api = sign_in(sandbox, "huge")
    first = api.get("/me/tracks?limit=50").json()
    assert first["total"] == 50_000
    middle = api.get("/me/tracks?limit=50&offset=25000").json()
    assert len(middle["items"]) == 50
    assert middle["next"] == f"{sandbox.api_url}/me/tracks?offset=25050&limit=50"
    last = api.get(middle["next"].replace("offset=25050", "offset=49950")).json()
    assert len(last["items"]) == 50
    assert last["next"] is None
    assert api.get("/me/tracks?limit=50&offset=50000").json()["items"] == []
    pages = (first, middle, last)
    ids = [i["track"]["id"] for p in pages for i in p["items"] if i["track"] and i["track"]["id"]]
    assert len(ids) == len(set(ids))
    newest = datetime.fromisoformat(first["items"][-1]["added_at"])
    assert newest > datetime.fromisoformat(middle["items"][0]["added_at"])
