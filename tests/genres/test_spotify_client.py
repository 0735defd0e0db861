"""The Spotify adapter against the bundled sandbox over real HTTP: sign-in, reads, writes."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.core.cache import cache

from genres.ratelimit import LocalRateLimiter
from genres.spotify import (
    BATCH_ARTISTS_CACHE_KEY,
    CallRecord,
    InvalidGrant,
    SpotifyAccounts,
    SpotifyAuthError,
    SpotifyBadRequest,
    SpotifyClient,
    SpotifyForbidden,
    TokenSet,
    forget_batch_artists_memory,
    pkce_pair,
    playlist_total,
    track_of,
)
from sandbox.testing import RunningSandbox

pytestmark = pytest.mark.integration

SCOPE = (
    "user-library-read playlist-read-private playlist-modify-private playlist-modify-public "
    "user-follow-read user-top-read"
)


class SandboxTokens:
    """A TokenProvider holding real sandbox tokens; counts forced refreshes."""

    def __init__(self, tokens: TokenSet, accounts: SpotifyAccounts) -> None:
        self.tokens = tokens
        self.accounts = accounts
        self.refreshes = 0
        self._lock = threading.Lock()

    @classmethod
    def issue(cls, sandbox: RunningSandbox, user: str = "listener") -> SandboxTokens:
        data = sandbox.issue_token(user)
        tokens = TokenSet(
            access_token=data["access_token"],
            refresh_token=data["refresh_token"],
            expires_at=datetime.now(UTC) + timedelta(seconds=data["expires_in"]),
            scope=data["scope"],
        )
        return cls(tokens, SpotifyAccounts())

    def access_token(self) -> str:
        with self._lock:
            return self.tokens.access_token

    def force_refresh(self) -> str:
        with self._lock:
            self.refreshes += 1
            self.tokens = self.accounts.refresh(refresh_token=self.tokens.refresh_token or "")
            return self.tokens.access_token


@pytest.fixture
def sandbox(adapter_sandbox: RunningSandbox) -> RunningSandbox:
    return adapter_sandbox


def client_for(
    sandbox: RunningSandbox, user: str = "listener", **kwargs: Any
) -> tuple[SpotifyClient, SandboxTokens]:
    tokens = SandboxTokens.issue(sandbox, user)
    kwargs.setdefault("limiter", LocalRateLimiter(0))
    kwargs.setdefault("backoff_base", 0.01)
    return SpotifyClient(tokens=tokens, **kwargs), tokens


def liked_artist_ids(client: SpotifyClient, pages: int) -> list[str]:
    ids: dict[str, None] = {}
    for n in range(pages):
        for item in client.liked_page(offset=n * 50).items:
            for artist in (item["track"] or {}).get("artists", []):
                if artist.get("id"):
                    ids[artist["id"]] = None
    return list(ids)


# --- Sign-in --------------------------------------------------------------------------------


def test_pkce_pair_gives_a_64_character_verifier_and_its_s256_challenge() -> None:
    import base64
    import hashlib

    verifier, challenge = pkce_pair()
    assert len(verifier) == 64
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    assert challenge == expected.decode()
    assert pkce_pair()[0] != verifier


def test_the_pkce_flow_signs_in_and_a_refresh_keeps_the_old_refresh_token(sandbox) -> None:
    accounts = SpotifyAccounts()
    verifier, challenge = pkce_pair()
    url = accounts.authorize_url(state="state-1", code_challenge=challenge, scope=SCOPE)
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(f"{sandbox.accounts_url}/authorize?")
    assert query["code_challenge_method"] == ["S256"]
    assert query["response_type"] == ["code"]
    assert query["client_id"] == [sandbox.client_id]

    answer = requests.get(
        url + "&sandbox_user=listener&sandbox_decision=approve", allow_redirects=False, timeout=5
    )
    assert answer.status_code == 302
    callback = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert callback["state"] == ["state-1"]

    tokens = accounts.exchange_code(code=callback["code"][0], code_verifier=verifier)
    assert tokens.access_token
    assert tokens.refresh_token
    assert set(tokens.scope.split()) == set(SCOPE.split())
    expected_expiry = datetime.now(UTC) + timedelta(hours=1)
    assert abs((tokens.expires_at - expected_expiry).total_seconds()) < 60

    refreshed = accounts.refresh(refresh_token=tokens.refresh_token)
    assert refreshed.access_token != tokens.access_token
    assert refreshed.refresh_token == tokens.refresh_token

    client = SpotifyClient(tokens=SandboxTokens(refreshed, accounts), limiter=LocalRateLimiter(0))
    assert client.me()["id"] == "listener"


def test_a_code_with_the_wrong_verifier_is_an_invalid_grant(sandbox) -> None:
    accounts = SpotifyAccounts()
    _, challenge = pkce_pair()
    url = accounts.authorize_url(state="s", code_challenge=challenge, scope=SCOPE)
    answer = requests.get(
        url + "&sandbox_user=listener&sandbox_decision=approve", allow_redirects=False, timeout=5
    )
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    with pytest.raises(InvalidGrant):
        accounts.exchange_code(code=code, code_verifier=pkce_pair()[0])


def test_a_revoked_refresh_token_raises_invalid_grant_without_retrying(sandbox) -> None:
    tokens = SandboxTokens.issue(sandbox)
    sandbox.revoke_refresh_tokens("listener")
    records: list[CallRecord] = []
    accounts = SpotifyAccounts(on_call=records.append, backoff_base=0.01)
    with pytest.raises(InvalidGrant) as caught:
        accounts.refresh(refresh_token=tokens.tokens.refresh_token or "")
    assert caught.value.status == 400
    assert caught.value.reason == "invalid_grant"
    assert [(r.endpoint, r.status) for r in records] == [("POST /api/token", 400)]


def test_a_refresh_is_retried_after_a_server_error(sandbox) -> None:
    tokens = SandboxTokens.issue(sandbox)
    sandbox.set_faults(scripted=[{"status": 503, "count": 1, "path": "/api/token"}])
    records: list[CallRecord] = []
    accounts = SpotifyAccounts(on_call=records.append, backoff_base=0.01)
    refreshed = accounts.refresh(refresh_token=tokens.tokens.refresh_token or "")
    assert refreshed.access_token
    assert [r.status for r in records] == [503, 200]


# --- Reads ----------------------------------------------------------------------------------


def test_me_returns_the_profile(sandbox) -> None:
    client, _ = client_for(sandbox)
    profile = client.me()
    assert profile["id"] == "listener"
    assert profile["display_name"] == "Sandbox Listener"
    assert profile["account_id"]


def test_liked_pages_come_newest_first_and_keep_null_tracks_and_local_files(sandbox) -> None:
    client, _ = client_for(sandbox)
    items: list[dict] = []
    offset: int | None = 0
    pages = 0
    while offset is not None:
        page = client.liked_page(offset=offset)
        assert page.offset == offset
        assert len(page.items) <= 50
        items += page.items
        offset = page.next_offset
        pages += 1
        if offset is not None:
            assert page.next == f"{sandbox.api_url}/me/tracks?offset={offset}&limit=50"
        else:
            assert page.next is None
    assert page.total == 600
    assert len(items) == 600
    assert pages == 12
    added = [item["added_at"] for item in items]
    assert added == sorted(added, reverse=True)
    assert all("track" in item for item in items)
    null_tracks = [item for item in items if item["track"] is None]
    local_files = [item for item in items if item["track"] and item["track"]["is_local"]]
    assert null_tracks
    assert local_files
    assert all(item["track"]["id"] is None for item in local_files)
    assert sandbox.stats()["by_route"]["GET /v1/me/tracks"] == 12


def test_an_empty_library_is_one_empty_page(sandbox) -> None:
    client, _ = client_for(sandbox, "newbie")
    page = client.liked_page(offset=0)
    assert (page.items, page.total, page.next, page.next_offset) == ([], 0, None, None)


def test_page_arguments_out_of_range_are_refused_before_any_request(sandbox) -> None:
    client, _ = client_for(sandbox)
    with pytest.raises(ValueError, match="limit"):
        client.liked_page(offset=0, limit=51)
    with pytest.raises(ValueError, match="offset"):
        client.liked_page(offset=-1)
    assert sandbox.stats()["total"] == 0


def test_playlist_items_are_normalised_in_the_2026_and_the_legacy_shape(sandbox) -> None:
    client, _ = client_for(sandbox)
    playlists = {p["name"]: p for p in client.my_playlists()}
    road_trip = playlists["Road trip"]
    assert playlist_total(road_trip) == 25
    page = client.playlist_items_page(road_trip["id"], offset=0)
    assert page.total == 25
    assert all(item["track"] is item["item"] for item in page.items)
    ids = client.playlist_track_ids(road_trip["id"])
    assert len(ids) == 25
    assert ids == [track_of(item)["id"] for item in page.items]

    sandbox.configure(legacy_shape=True)
    legacy = {p["name"]: p for p in client.my_playlists()}["Road trip"]
    assert playlist_total(legacy) == 25
    legacy_page = client.playlist_items_page(road_trip["id"], offset=0)
    assert "item" not in legacy_page.items[0]
    assert [item["track"]["id"] for item in legacy_page.items] == ids


def test_track_of_and_playlist_total_read_both_shapes() -> None:
    track = {"id": "t"}
    assert track_of({"track": track}) is track
    assert track_of({"item": track}) is track
    assert track_of({"track": None, "item": track}) is track
    assert track_of({"track": None}) is None
    assert track_of({}) is None
    assert playlist_total({"items": {"total": 3}}) == 3
    assert playlist_total({"tracks": {"total": 4}}) == 4
    assert playlist_total({"name": "x"}) == 0


def test_another_users_playlist_in_development_mode_is_forbidden(sandbox) -> None:
    client, _ = client_for(sandbox)
    weekly = {p["name"]: p for p in client.my_playlists()}["Discover Weekly"]
    with pytest.raises(SpotifyForbidden) as caught:
        client.playlist_items_page(weekly["id"], offset=0)
    assert caught.value.status == 403
    assert caught.value.endpoint == "GET /playlists/{id}/items"


def test_an_unknown_artist_is_none(sandbox) -> None:
    client, _ = client_for(sandbox)
    assert client.artist("0" * 22) is None


def test_followed_and_top_artists_are_full_artists_with_genres(sandbox) -> None:
    client, _ = client_for(sandbox)
    followed = list(client.followed_artists())
    expected = len(sandbox.state.users["listener"].library.followed())
    assert len(followed) == expected > 50
    assert len({a["id"] for a in followed}) == expected
    assert all("genres" in a for a in followed)
    top = list(client.top_artists())
    assert top
    assert len({a["id"] for a in top}) == len(top)
    assert all("genres" in a for a in top)
    routes = sandbox.stats()["by_route"]
    assert routes["GET /v1/me/following"] == -(-expected // 50)
    assert routes["GET /v1/me/top/artists"] == 3


def test_a_user_who_is_not_allow_listed_gets_forbidden(sandbox) -> None:
    client, _ = client_for(sandbox, "outsider")
    with pytest.raises(SpotifyForbidden, match="may not be registered"):
        client.me()


# --- Artists --------------------------------------------------------------------------------


def test_development_mode_tries_the_batch_once_then_fetches_artists_one_by_one(sandbox) -> None:
    client, _ = client_for(sandbox)
    ids = liked_artist_ids(client, 2)
    sandbox.reset_stats()
    delivered: list[str] = []
    threads: set[threading.Thread] = set()

    def on_artist(artist: dict) -> None:
        threads.add(threading.current_thread())
        delivered.append(artist["id"])

    found = client.artists([*ids, ids[0], ""], on_artist=on_artist)
    assert set(found) == set(ids)
    assert all(artist and "genres" in artist for artist in found.values())
    assert sorted(delivered) == sorted(ids)
    assert threads == {threading.current_thread()}  # delivered on the calling thread only
    routes = sandbox.stats()["by_route"]
    assert routes == {"GET /v1/artists": 1, "GET /v1/artists/{id}": len(ids)}
    assert cache.get(BATCH_ARTISTS_CACHE_KEY) == sandbox.api_url

    # Remembered in this process, and through the shared cache by a fresh worker.
    client.artists(ids[:3])
    forget_batch_artists_memory(shared=False)
    client.artists(ids[:3])
    assert sandbox.stats()["by_route"]["GET /v1/artists"] == 1


def test_extended_quota_fetches_fifty_artists_a_request(sandbox) -> None:
    sandbox.configure(extended_quota=True)
    client, _ = client_for(sandbox)
    ids = liked_artist_ids(client, 12)[:120]
    assert len(ids) == 120
    sandbox.reset_stats()
    delivered: list[dict] = []
    found = client.artists([*ids, "0" * 22], on_artist=delivered.append)
    assert sandbox.stats()["by_route"] == {"GET /v1/artists": 3}
    assert found["0" * 22] is None
    assert [found[i]["id"] for i in ids] == ids
    assert len(delivered) == 120
    assert cache.get(BATCH_ARTISTS_CACHE_KEY) is None


def test_lookups_run_concurrently_but_never_more_than_the_bound(sandbox) -> None:
    client, _ = client_for(sandbox, concurrency=8)
    ids = liked_artist_ids(client, 2)[:24]
    client.artists(ids[:1])  # learn Development Mode first
    sandbox.set_faults(latency_ms=100)
    start = time.monotonic()
    found = client.artists(ids)
    elapsed = time.monotonic() - start
    assert len(found) == 24
    # 24 lookups of 100 ms, 8 at a time: about 0.3 s; one by one it would be 2.4 s.
    assert 0.29 <= elapsed < 1.2


# --- Writes ---------------------------------------------------------------------------------


def test_a_created_playlist_is_private_and_receives_items_in_order(sandbox) -> None:
    client, _ = client_for(sandbox)
    playlist = client.create_playlist(name="swedish pop (from Likes)", description="By Swedify")
    assert playlist["public"] is False
    assert playlist["name"] == "swedish pop (from Likes)"
    tracks = [item["track"] for n in range(3) for item in client.liked_page(offset=n * 50).items]
    uris = [t["uri"] for t in tracks if t and t["id"]][:130]
    snapshot = client.add_items(playlist["id"], uris[:100])
    assert snapshot
    client.add_items(playlist["id"], uris[100:])
    assert client.playlist_track_ids(playlist["id"]) == [u.rsplit(":", 1)[1] for u in uris]
    stored = {p["id"]: p for p in sandbox.playlists("listener")}[playlist["id"]]
    assert stored["total"] == 130
    assert stored["public"] is False


def test_add_items_refuses_more_than_a_hundred_or_none_without_a_request(sandbox) -> None:
    client, _ = client_for(sandbox)
    with pytest.raises(ValueError, match="at most 100"):
        client.add_items("x" * 22, ["spotify:track:" + "a" * 22] * 101)
    with pytest.raises(ValueError, match="at least one"):
        client.add_items("x" * 22, [])
    assert sandbox.stats()["total"] == 0


# --- Tokens, hooks --------------------------------------------------------------------------


def test_a_401_refreshes_the_token_once_and_succeeds(sandbox) -> None:
    records: list[CallRecord] = []
    client, tokens = client_for(sandbox, on_call=records.append)
    sandbox.expire_tokens("listener")
    assert client.me()["id"] == "listener"
    assert tokens.refreshes == 1
    assert [(r.endpoint, r.status) for r in records] == [("GET /me", 401), ("GET /me", 200)]


def test_a_401_that_a_refresh_does_not_cure_is_an_auth_error(sandbox) -> None:
    class StuckTokens:
        refreshes = 0

        def access_token(self) -> str:
            return "not-a-valid-token"

        def force_refresh(self) -> str:
            self.refreshes += 1
            return "still-not-valid"

    tokens = StuckTokens()
    client = SpotifyClient(tokens=tokens, limiter=LocalRateLimiter(0))
    with pytest.raises(SpotifyAuthError) as caught:
        client.me()
    assert caught.value.status == 401
    assert tokens.refreshes == 1
    assert sandbox.stats()["by_status"] == {"401": 2}


def test_a_revoked_refresh_token_during_a_call_surfaces_as_invalid_grant(sandbox) -> None:
    client, _ = client_for(sandbox)
    sandbox.expire_tokens("listener")
    sandbox.revoke_refresh_tokens("listener")
    with pytest.raises(InvalidGrant):
        client.me()


def test_every_attempt_is_reported_with_its_route_template(sandbox) -> None:
    records: list[CallRecord] = []
    client, _ = client_for(sandbox, on_call=records.append)
    client.me()
    client.liked_page(offset=0, limit=10)
    client.artist(liked_artist_ids(client, 1)[0])
    playlist = client.create_playlist(name="x")
    assert [(r.method, r.endpoint, r.status) for r in records] == [
        ("GET", "GET /me", 200),
        ("GET", "GET /me/tracks", 200),
        ("GET", "GET /me/tracks", 200),
        ("GET", "GET /artists/{id}", 200),
        ("POST", "POST /me/playlists", 201),
    ]
    assert all(r.duration_ms >= 0 and r.retry_after is None for r in records)
    assert playlist["id"]


def test_a_failing_on_call_hook_never_breaks_the_call(sandbox, caplog) -> None:
    def broken(record: CallRecord) -> None:
        raise RuntimeError("metrics down")

    client, _ = client_for(sandbox, on_call=broken)
    assert client.me()["id"] == "listener"
    assert "on_call hook failed" in caplog.text


def test_ids_cannot_change_the_path_they_are_put_into(sandbox) -> None:
    client, _ = client_for(sandbox)
    with pytest.raises(SpotifyBadRequest, match="Invalid base62 id"):
        # Quoted into one segment, this never reaches /v1/me/playlists.
        client.playlist_items_page("../../me", offset=0)
    assert sandbox.stats()["by_route"] == {"GET /v1/playlists/{id}/items": 1}
