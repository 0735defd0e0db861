"""Playlists: creation, items in their 2026 shape, limits and no de-duplication."""

from __future__ import annotations

import pytest

from sandbox.testing import RunningSandbox, SandboxError, running_sandbox
from tests.sandbox.conftest import Api, sign_in


def _liked_uris(api: Api, count: int) -> list[str]:
    items = api.get("/me/tracks?limit=50").json()["items"]
    uris = [i["track"]["uri"] for i in items if i["track"] and not i["track"]["is_local"]]
    return uris[:count]


def _create(api: Api, name: str = "swedish pop (from Likes)") -> dict:
    answer = api.post("/me/playlists", {"name": name, "public": False, "description": "by genre"})
    assert answer.status == 201, answer.text
    return answer.json()


def test_creating_a_playlist_answers_201_with_the_2026_shape(api: Api) -> None:
    playlist = _create(api)
    assert playlist["name"] == "swedish pop (from Likes)"
    assert playlist["public"] is False
    assert playlist["description"] == "by genre"
    assert playlist["owner"]["id"] == "listener"
    assert playlist["owner"]["display_name"] == "Sandbox Listener"
    assert playlist["external_urls"] == {
        "spotify": f"https://open.spotify.com/playlist/{playlist['id']}"
    }
    assert playlist["uri"] == f"spotify:playlist:{playlist['id']}"
    assert playlist["snapshot_id"]
    assert playlist["items"] == {"total": 0, "href": api.url(f"/playlists/{playlist['id']}/items")}
    assert "tracks" not in playlist
    listed = api.get("/me/playlists").json()["items"]
    assert listed[0]["id"] == playlist["id"]


def test_the_legacy_shape_switch_adds_tracks_keys() -> None:
    with running_sandbox(legacy_shape=True) as sandbox:
        api = sign_in(sandbox, "listener")
        playlist = _create(api)
        assert playlist["tracks"]["total"] == 0
        assert "items" in playlist
        api.post(f"/playlists/{playlist['id']}/items", {"uris": _liked_uris(api, 1)})
        item = api.get(f"/playlists/{playlist['id']}/items").json()["items"][0]
        assert "track" in item
        assert "item" not in item


def test_creating_a_playlist_without_a_name_answers_400(api: Api) -> None:
    assert api.post("/me/playlists", {"public": False}).status == 400
    assert api.post("/me/playlists", {"name": "", "public": False}).status == 400


def test_adding_items_keeps_duplicates(api: Api, sandbox: RunningSandbox) -> None:
    playlist = _create(api)
    uris = _liked_uris(api, 3)
    first = api.post(f"/playlists/{playlist['id']}/items", {"uris": uris})
    assert first.status == 201
    second = api.post(f"/playlists/{playlist['id']}/items", {"uris": uris[:1]})
    assert second.status == 201
    assert second.json()["snapshot_id"] != first.json()["snapshot_id"]
    items = api.get(f"/playlists/{playlist['id']}/items").json()
    assert items["total"] == 4
    assert [i["item"]["uri"] for i in items["items"]] == [*uris, uris[0]]
    truth = next(p for p in sandbox.playlists("listener") if p["id"] == playlist["id"])
    assert [i["uri"] for i in truth["items"]] == [*uris, uris[0]]


def test_adding_more_than_100_uris_answers_400(api: Api, sandbox: RunningSandbox) -> None:
    playlist = _create(api)
    uris = _liked_uris(api, 1) * 101
    answer = api.post(f"/playlists/{playlist['id']}/items", {"uris": uris})
    assert answer.status == 400
    assert api.post(f"/playlists/{playlist['id']}/items", {"uris": uris[:100]}).status == 201


def test_adding_invalid_or_unknown_uris_answers_400(api: Api) -> None:
    playlist = _create(api)
    path = f"/playlists/{playlist['id']}/items"
    assert api.post(path, {"uris": ["spotify:track:short"]}).status == 400
    assert api.post(path, {"uris": ["spotify:episode:0000000000000000000000"]}).status == 400
    assert api.post(path, {"uris": ["spotify:track:0000000000000000000000"]}).status == 400
    assert api.post(path, {"uris": []}).status == 400
    assert api.get(path).json()["total"] == 0


def test_items_of_a_playlist_owned_by_someone_else_are_forbidden(
    api: Api, sandbox: RunningSandbox
) -> None:
    discover = next(p for p in sandbox.playlists("listener") if p["name"] == "Discover Weekly")
    assert discover["owner"]["id"] != "listener"
    assert discover["id"] in [p["id"] for p in api.get("/me/playlists").json()["items"]]
    assert api.get(f"/playlists/{discover['id']}/items").status == 403
    answer = api.post(f"/playlists/{discover['id']}/items", {"uris": _liked_uris(api, 1)})
    assert answer.status == 403


def test_a_collaborator_reads_and_adds_items(sandbox: RunningSandbox) -> None:
    bigfan = sign_in(sandbox, "bigfan")
    shared = next(p for p in sandbox.playlists("bigfan") if p["collaborative"])
    items = bigfan.all_pages(f"/playlists/{shared['id']}/items?limit=50")
    assert len(items) == shared["total"] == 40
    assert all("item" in i and i["item"]["id"] for i in items)
    answer = bigfan.post(f"/playlists/{shared['id']}/items", {"uris": [items[0]["item"]["uri"]]})
    assert answer.status == 201


def test_the_control_api_adds_a_duplicate_name_playlist(sandbox: RunningSandbox) -> None:
    made = sandbox.add_playlist("listener", name="Road trip", tracks=5)
    assert made["total"] == 5
    names = [p["name"] for p in sandbox.playlists("listener")]
    assert names.count("Road trip") == 2
    api = sign_in(sandbox, "listener")
    listed = [p["name"] for p in api.get("/me/playlists").json()["items"]]
    assert listed.count("Road trip") == 2


def test_private_playlists_need_playlist_read_private(sandbox: RunningSandbox) -> None:
    full = sign_in(sandbox, "listener").get("/me/playlists").json()
    public_only = sign_in(sandbox, "listener", scope="user-library-read").get("/me/playlists")
    assert public_only.json()["total"] < full["total"]
    assert all(p["public"] for p in public_only.json()["items"])


def test_a_playlist_deleted_in_the_app_leaves_the_listing_but_stays_for_its_owner(
    api: Api, sandbox: RunningSandbox
) -> None:
    playlist = _create(api)
    uris = _liked_uris(api, 2)
    api.post(f"/playlists/{playlist['id']}/items", {"uris": uris[:1]})

    assert sandbox.delete_playlist("listener", playlist["id"]) == {"deleted": playlist["id"]}

    listed = api.get("/me/playlists").json()["items"]
    assert playlist["id"] not in [p["id"] for p in listed]
    assert playlist["id"] not in [p["id"] for p in sandbox.playlists("listener")]
    # Like Spotify: its owner can still read it and add to it.
    assert api.post(f"/playlists/{playlist['id']}/items", {"uris": uris[1:]}).status == 201
    items = api.get(f"/playlists/{playlist['id']}/items").json()["items"]
    assert [i["item"]["uri"] for i in items] == uris
    with pytest.raises(SandboxError) as twice:
        sandbox.delete_playlist("listener", playlist["id"])
    assert twice.value.status == 404
