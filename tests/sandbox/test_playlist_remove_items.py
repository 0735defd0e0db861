"""Removing playlist items (DELETE /v1/playlists/{id}/items) as Spotify answers it in 2026:
every occurrence of each URI goes, a URI that is not there is no error, owners and
collaborators only, at most 100 items, a clear 400 for a bad body, counted in the stats."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.testing import RunningSandbox, running_sandbox
from tests.sandbox.conftest import Answer, Api, http, sign_in


def _delete(api: Api, path: str, body: Any) -> Answer:
    return http("DELETE", api.url(path), token=api.token, json_body=body)


def _items(uris: list[str]) -> dict[str, Any]:
    return {"items": [{"uri": uri} for uri in uris]}


def _liked_uris(api: Api, count: int) -> list[str]:
    items = api.get("/me/tracks?limit=50").json()["items"]
    uris = [i["track"]["uri"] for i in items if i["track"] and not i["track"]["is_local"]]
    return uris[:count]


def _playlist_with(api: Api, uris: list[str]) -> str:
    answer = api.post("/me/playlists", {"name": "jazz (from Likes)", "public": False})
    assert answer.status == 201, answer.text
    playlist_id = answer.json()["id"]
    assert api.post(f"/playlists/{playlist_id}/items", {"uris": uris}).status == 201
    return playlist_id


def _uris_in(api: Api, playlist_id: str) -> list[str]:
    return [i["item"]["uri"] for i in api.all_pages(f"/playlists/{playlist_id}/items?limit=50")]


def test_removing_takes_every_occurrence_and_keeps_the_rest_in_order(
    api: Api, sandbox: RunningSandbox
) -> None:
    a, b, c = _liked_uris(api, 3)
    playlist_id = _playlist_with(api, [a, b, a, c, b])
    before = api.get("/me/playlists").json()["items"][0]["snapshot_id"]

    answer = _delete(api, f"/playlists/{playlist_id}/items", _items([a, b]))

    assert answer.status == 200, answer.text
    assert answer.json()["snapshot_id"] not in ("", before)
    assert _uris_in(api, playlist_id) == [c]
    stored = next(p for p in sandbox.playlists("listener") if p["id"] == playlist_id)
    assert [i["uri"] for i in stored["items"]] == [c]
    assert stored["snapshot_id"] == answer.json()["snapshot_id"]


def test_removing_a_uri_that_is_not_in_the_playlist_answers_200_and_changes_nothing(
    api: Api,
) -> None:
    a, b = _liked_uris(api, 2)
    playlist_id = _playlist_with(api, [a])
    path = f"/playlists/{playlist_id}/items"
    first = _delete(api, path, _items([b]))
    # Sending a removal again (its answer was lost) is harmless: the same snapshot comes back.
    again = _delete(api, path, _items([b]))

    assert first.status == again.status == 200
    assert first.json()["snapshot_id"] == again.json()["snapshot_id"]
    assert _uris_in(api, playlist_id) == [a]


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {},
        {"items": []},
        {"items": "spotify:track:x"},
        {"uris": ["spotify:track:0000000000000000000000"]},
        {"items": ["spotify:track:0000000000000000000000"]},
        {"items": [{"id": "0000000000000000000000"}]},
        {"items": [{"uri": "spotify:track:short"}]},
        {"items": [{"uri": "spotify:episode:0000000000000000000000"}]},
        {"items": [{"uri": "spotify:track:0000000000000000000000", "positions": [0]}]},
        {"items": [{"uri": "spotify:track:0000000000000000000000"}], "snapshot_id": 7},
    ],
)
def test_a_bad_body_answers_400_and_removes_nothing(api: Api, body: Any) -> None:
    (a,) = _liked_uris(api, 1)
    playlist_id = _playlist_with(api, [a])

    answer = _delete(api, f"/playlists/{playlist_id}/items", body)

    assert answer.status == 400, answer.text
    assert answer.json()["error"]["status"] == 400
    assert _uris_in(api, playlist_id) == [a]


def test_more_than_100_items_answer_400_and_100_are_accepted(api: Api) -> None:
    uris = _liked_uris(api, 1)
    playlist_id = _playlist_with(api, uris)
    path = f"/playlists/{playlist_id}/items"

    assert _delete(api, path, _items(uris * 101)).status == 400
    assert _uris_in(api, playlist_id) == uris
    assert _delete(api, path, _items(uris * 100)).status == 200
    assert _uris_in(api, playlist_id) == []


def test_only_owners_and_collaborators_with_the_modify_scope_may_remove(
    api: Api, sandbox: RunningSandbox
) -> None:
    discover = next(p for p in sandbox.playlists("listener") if p["name"] == "Discover Weekly")
    path = f"/playlists/{discover['id']}/items"
    assert _delete(api, path, _items([discover["items"][0]["uri"]])).status == 403
    after = next(p for p in sandbox.playlists("listener") if p["id"] == discover["id"])
    assert after["items"] == discover["items"]

    (a,) = _liked_uris(api, 1)
    playlist_id = _playlist_with(api, [a])
    read_only = sign_in(sandbox, "listener", scope="user-library-read playlist-read-private")
    assert _delete(read_only, f"/playlists/{playlist_id}/items", _items([a])).status == 403
    unknown = _delete(api, f"/playlists/{'0' * 22}/items", _items([a]))
    assert unknown.status == 404
    assert _uris_in(api, playlist_id) == [a]

    bigfan = sign_in(sandbox, "bigfan")
    shared = next(p for p in sandbox.playlists("bigfan") if p["collaborative"])
    first = shared["items"][0]["uri"]
    assert _delete(bigfan, f"/playlists/{shared['id']}/items", _items([first])).status == 200
    assert first not in _uris_in(bigfan, shared["id"])


def test_removals_are_counted_in_the_stats_and_the_request_log(
    api: Api, sandbox: RunningSandbox
) -> None:
    (a,) = _liked_uris(api, 1)
    playlist_id = _playlist_with(api, [a])
    sandbox.reset_stats()

    _delete(api, f"/playlists/{playlist_id}/items", _items([a]))
    _delete(api, f"/playlists/{playlist_id}/items", {"items": []})

    stats = sandbox.stats()
    assert stats["by_route"]["DELETE /v1/playlists/{id}/items"] == 2
    assert stats["by_group"]["playlists"] == 2
    assert stats["by_status"] == {"200": 1, "400": 1}
    logged = sandbox.requests()[-2:]
    assert [(r["method"], r["route"], r["status"]) for r in logged] == [
        ("DELETE", "/v1/playlists/{id}/items", 200),
        ("DELETE", "/v1/playlists/{id}/items", 400),
    ]


def test_the_pre_2026_tracks_route_answers_403_unless_extended_quota(api: Api) -> None:
    (a,) = _liked_uris(api, 1)
    playlist_id = _playlist_with(api, [a])
    body = {"tracks": [{"uri": a}]}

    assert _delete(api, f"/playlists/{playlist_id}/tracks", body).status == 403
    assert _uris_in(api, playlist_id) == [a]

    with running_sandbox(extended_quota=True) as extended:
        other = sign_in(extended, "listener")
        (b,) = _liked_uris(other, 1)
        other_id = _playlist_with(other, [b])
        legacy = _delete(other, f"/playlists/{other_id}/tracks", {"tracks": [{"uri": b}]})
        assert legacy.status == 200, legacy.text
        assert _uris_in(other, other_id) == []
