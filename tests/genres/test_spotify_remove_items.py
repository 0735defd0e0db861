"""SpotifyClient.remove_items against the sandbox over real HTTP: batches of 100, each URI
once, a write whose answer is unclear raises SpotifyAmbiguousWrite, and sending it again is
harmless because a removal is idempotent."""

from __future__ import annotations

import pytest

from genres.ratelimit import LocalRateLimiter
from genres.spotify import SpotifyAmbiguousWrite, SpotifyClient, SpotifyForbidden
from sandbox.testing import RunningSandbox

pytestmark = pytest.mark.integration


class SandboxToken:
    """One access token issued by the sandbox; these tests never need a refresh."""

    def __init__(self, sandbox: RunningSandbox) -> None:
        self.token = sandbox.issue_token("listener")["access_token"]

    def access_token(self) -> str:
        return self.token

    def force_refresh(self) -> str:
        raise AssertionError("no test here expires the token")


@pytest.fixture
def sandbox(adapter_sandbox: RunningSandbox) -> RunningSandbox:
    return adapter_sandbox


@pytest.fixture
def client(sandbox: RunningSandbox) -> SpotifyClient:
    return SpotifyClient(tokens=SandboxToken(sandbox), limiter=LocalRateLimiter(0))


def liked_uris(client: SpotifyClient, count: int) -> list[str]:
    uris: list[str] = []
    offset = 0
    while len(uris) < count:
        for item in client.liked_page(offset=offset).items:
            track = item["track"]
            if track and track.get("id") and not track.get("is_local"):
                uris.append(track["uri"])
        offset += 50
    return uris[:count]


def playlist_holding(client: SpotifyClient, uris: list[str]) -> str:
    playlist_id = client.create_playlist(name="jazz (from Likes)")["id"]
    for start in range(0, len(uris), 100):
        client.add_items(playlist_id, uris[start : start + 100])
    return playlist_id


def ids(uris: list[str]) -> list[str]:
    return [uri.rsplit(":", 1)[1] for uri in uris]


def test_it_removes_130_uris_in_two_requests_and_keeps_the_others(sandbox, client) -> None:
    uris = liked_uris(client, 140)
    playlist_id = playlist_holding(client, uris)
    sandbox.reset_stats()

    snapshot = client.remove_items(playlist_id, uris[:130])

    assert client.playlist_track_ids(playlist_id) == ids(uris[130:])
    assert sandbox.stats()["by_route"]["DELETE /v1/playlists/{id}/items"] == 2
    stored = next(p for p in sandbox.playlists("listener") if p["id"] == playlist_id)
    assert snapshot == stored["snapshot_id"]


def test_a_uri_given_twice_is_sent_once_and_every_occurrence_goes(sandbox, client) -> None:
    a, b = liked_uris(client, 2)
    playlist_id = playlist_holding(client, [a, b, a])
    sandbox.reset_stats()

    client.remove_items(playlist_id, [a] * 150)

    assert client.playlist_track_ids(playlist_id) == ids([b])
    assert sandbox.stats()["by_route"]["DELETE /v1/playlists/{id}/items"] == 1


def test_nothing_to_remove_sends_no_request(sandbox, client) -> None:
    assert client.remove_items("x" * 22, []) == ""
    assert sandbox.stats()["total"] == 0


def test_an_applied_removal_answered_502_is_ambiguous_and_sending_it_again_is_harmless(
    sandbox, client
) -> None:
    a, b = liked_uris(client, 2)
    playlist_id = playlist_holding(client, [a, b])
    sandbox.set_faults(
        scripted=[
            {
                "action": "write_then_status",
                "status": 502,
                "method": "DELETE",
                "path": "/v1/playlists/*/items",
            }
        ]
    )
    sandbox.reset_stats()

    with pytest.raises(SpotifyAmbiguousWrite):
        client.remove_items(playlist_id, [a])
    # The write was never re-sent by the client itself.
    assert sandbox.stats()["by_route"]["DELETE /v1/playlists/{id}/items"] == 1
    assert client.playlist_track_ids(playlist_id) == ids([b])

    client.remove_items(playlist_id, [a])

    assert client.playlist_track_ids(playlist_id) == ids([b])


def test_a_removal_refused_with_503_is_ambiguous_and_not_retried(sandbox, client) -> None:
    (a,) = liked_uris(client, 1)
    playlist_id = playlist_holding(client, [a])
    sandbox.set_faults(scripted=[{"status": 503, "method": "DELETE", "count": 5}])
    sandbox.reset_stats()

    with pytest.raises(SpotifyAmbiguousWrite):
        client.remove_items(playlist_id, [a])

    assert sandbox.stats()["total"] == 1


def test_removing_from_someone_elses_playlist_is_forbidden(sandbox, client) -> None:
    discover = next(p for p in sandbox.playlists("listener") if p["name"] == "Discover Weekly")

    with pytest.raises(SpotifyForbidden):
        client.remove_items(discover["id"], [discover["items"][0]["uri"]])
