"""The /v1 endpoints: shapes, limits and Development-Mode refusals, over real HTTP."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from sandbox.testing import RunningSandbox, running_sandbox
from tests.sandbox.conftest import Api, http, sign_in

SPOTIFY_ID = re.compile(r"[0-9A-Za-z]{22}")


def test_me_answers_the_profile(api: Api) -> None:
    answer = api.get("/me")
    assert answer.status == 200
    me = answer.json()
    assert me["id"] == "listener"
    assert me["display_name"] == "Sandbox Listener"
    assert me["type"] == "user"
    assert me["uri"] == "spotify:user:listener"
    assert me["images"] == []
    assert SPOTIFY_ID.fullmatch(me["account_id"])


def test_liked_tracks_page_with_absolute_next_urls_newest_first(
    api: Api, sandbox: RunningSandbox
) -> None:
    first = api.get("/me/tracks?limit=50").json()
    assert first["total"] == 600
    assert (first["limit"], first["offset"], first["previous"]) == (50, 0, None)
    assert first["next"] == f"{sandbox.api_url}/me/tracks?offset=50&limit=50"
    assert first["href"] == f"{sandbox.api_url}/me/tracks?offset=0&limit=50"
    items = api.all_pages("/me/tracks?limit=50")
    assert len(items) == 600
    dates = [datetime.fromisoformat(item["added_at"]) for item in items]
    assert dates == sorted(dates, reverse=True)
    assert len(set(dates)) == len(dates)
    last = api.get("/me/tracks?limit=50&offset=550").json()
    assert last["next"] is None
    assert last["previous"] == f"{sandbox.api_url}/me/tracks?offset=500&limit=50"


def test_liked_tracks_include_unavailable_entries_and_local_files(api: Api) -> None:
    items = api.all_pages("/me/tracks?limit=50")
    assert any(item["track"] is None for item in items)
    local = [item["track"] for item in items if item["track"] and item["track"]["is_local"]]
    assert local
    assert all(t["id"] is None and t["uri"].startswith("spotify:local:") for t in local)
    regular = [item["track"] for item in items if item["track"] and not item["track"]["is_local"]]
    track = regular[0]
    assert SPOTIFY_ID.fullmatch(track["id"])
    assert track["uri"] == f"spotify:track:{track['id']}"
    assert {"id", "name", "uri", "is_local", "artists", "album", "duration_ms"} <= set(track)
    for artist in track["artists"]:
        assert set(artist) >= {"id", "name", "uri", "type"}
        assert "genres" not in artist
    assert any(len(t["artists"]) >= 2 for t in regular)
    assert max(len(t["artists"]) for t in regular) <= 3


@pytest.mark.parametrize("limit", ["0", "51", "many"])
def test_it_refuses_a_limit_outside_1_to_50(api: Api, limit: str) -> None:
    for path in ("/me/tracks", "/me/playlists", "/me/top/artists"):
        answer = api.get(f"{path}?limit={limit}")
        assert answer.status == 400
        assert answer.json() == {"error": {"status": 400, "message": "Invalid limit"}}
    assert api.get(f"/me/following?type=artist&limit={limit}").status == 400


def test_an_artist_is_full_with_genres_but_without_popularity(api: Api) -> None:
    track = next(i["track"] for i in api.get("/me/tracks?limit=10").json()["items"] if i["track"])
    artist_id = track["artists"][0]["id"]
    answer = api.get(f"/artists/{artist_id}")
    assert answer.status == 200
    artist = answer.json()
    assert artist["id"] == artist_id
    assert artist["type"] == "artist"
    assert artist["uri"] == f"spotify:artist:{artist_id}"
    assert isinstance(artist["genres"], list)
    assert isinstance(artist["images"], list)
    assert "popularity" not in artist
    assert "followers" not in artist


def test_an_unknown_artist_is_404_and_a_malformed_id_400(api: Api) -> None:
    assert api.get("/artists/0000000000000000000000").status == 404
    assert api.get("/artists/not-an-id").status == 400


def test_batch_artists_are_forbidden_in_development_mode(api: Api) -> None:
    followed = api.get("/me/following?type=artist&limit=3").json()["artists"]["items"]
    ids = ",".join(a["id"] for a in followed)
    answer = api.get(f"/artists?ids={ids}")
    assert answer.status == 403
    assert answer.json()["error"]["status"] == 403


def test_batch_artists_work_with_extended_quota() -> None:
    with running_sandbox(extended_quota=True) as sandbox:
        api = sign_in(sandbox, "listener")
        followed = api.get("/me/following?type=artist&limit=50").json()["artists"]["items"]
        ids = [a["id"] for a in followed]
        answer = api.get(f"/artists?ids={','.join([*ids[:3], '0000000000000000000000'])}")
        assert answer.status == 200
        artists = answer.json()["artists"]
        assert [a["id"] for a in artists[:3]] == ids[:3]
        assert artists[3] is None
        assert artists[0]["genres"] == followed[0]["genres"]
        assert api.get(f"/artists?ids={','.join(ids[:1] * 51)}").status == 400


def test_followed_artists_page_by_cursor_with_genres(api: Api, sandbox: RunningSandbox) -> None:
    first = api.get("/me/following?type=artist&limit=20").json()["artists"]
    total = first["total"]
    # About followed_fraction (0.3) of the 250 artists of `listener`.
    assert 50 <= total <= 100
    seen = []
    page = first
    while True:
        assert page["limit"] == 20
        seen += page["items"]
        if page["next"] is None:
            assert page["cursors"]["after"] is None
            break
        assert page["next"].startswith(f"{sandbox.api_url}/me/following?")
        assert page["cursors"]["after"] == page["items"][-1]["id"]
        page = api.get(page["next"]).json()["artists"]
    assert len(seen) == total
    assert len({a["id"] for a in seen}) == total
    assert all("genres" in a for a in seen)
    assert api.get("/me/following?type=user").status == 400


def test_top_artists_page_full_artists_per_time_range(api: Api) -> None:
    medium = api.all_pages("/me/top/artists?limit=50")
    assert medium
    assert all("genres" in a and a["type"] == "artist" for a in medium)
    short = api.all_pages("/me/top/artists?limit=50&time_range=short_term")
    assert [a["id"] for a in short] != [a["id"] for a in medium]
    assert api.get("/me/top/artists?time_range=forever").status == 400


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/users/listener/playlists"),
        ("GET", "/playlists/{playlist}/tracks"),
        ("POST", "/playlists/{playlist}/tracks"),
    ],
)
def test_removed_endpoints_answer_403(
    api: Api, sandbox: RunningSandbox, method: str, path: str
) -> None:
    playlist = sandbox.playlists("listener")[0]["id"]
    url = api.url(path.format(playlist=playlist))
    body = {"name": "x", "uris": []} if method == "POST" else None
    answer = http(method, url, token=api.token, json_body=body)
    assert answer.status == 403
    assert answer.json()["error"]["status"] == 403


def test_an_unlisted_path_answers_404(api: Api) -> None:
    answer = api.get("/me/albums")
    assert answer.status == 404
    assert answer.json()["error"]["status"] == 404
    assert api.get("/audio-features/0000000000000000000000").status == 404


def test_a_user_who_is_not_allow_listed_signs_in_but_gets_403(sandbox: RunningSandbox) -> None:
    outsider = sign_in(sandbox, "outsider")
    for path in ("/me", "/me/tracks", "/me/playlists"):
        answer = outsider.get(path)
        assert answer.status == 403
        assert answer.json() == {
            "error": {
                "status": 403,
                "message": "Check settings on developer.spotify.com/dashboard, "
                "the user may not be registered.",
            }
        }


def test_it_refuses_a_call_without_the_needed_scope(sandbox: RunningSandbox) -> None:
    api = sign_in(sandbox, "listener", scope="playlist-read-private")
    answer = api.get("/me/tracks")
    assert answer.status == 403
    assert answer.json()["error"]["message"] == "Insufficient client scope"
    assert api.get("/me").status == 200
