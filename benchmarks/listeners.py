"""The benchmarks' listeners: sandbox users with libraries of a given shape, linked to Swedify
accounts without the consent dance, and the caches a cold scan must start without.
``benchmarks.scan`` measures one listener's scans; ``benchmarks.budget`` and
``benchmarks.sync`` start several listeners' scans at once (``Listener``, ``scan_begin``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from urllib.request import ProxyHandler, Request, build_opener

PAGE = 50
SANDBOX_TIMEOUT = 30
# Artists per liked song: the issue's 10,000 songs by 3,000 artists (the sandbox's default).
ARTISTS_PER_TRACK = 0.3

_opener = build_opener(ProxyHandler({}))


def listener_spec(
    user_id: str,
    *,
    tracks: int,
    artists: int,
    offset: int,
    followed: float = 0.0,
    top: float = 0.0,
    exact_artists: bool = False,
) -> dict[str, Any]:
    """A sandbox user spec. ``exact_artists`` drops unavailable entries and local files, so
    every artist of the slice is in the library (needed where a figure depends on exactly
    which artists two listeners share)."""
    spec: dict[str, Any] = {
        "id": user_id,
        "tracks": tracks,
        "artists": artists,
        "artist_offset": offset,
        "followed_fraction": followed,
        "top_fraction": top,
    }
    if exact_artists:
        spec.update(null_fraction=0.0, local_fraction=0.0)
    return spec


def listener_create(sandbox: Any, spec: dict[str, Any]) -> Any:
    """Creates the sandbox user and links it to a Swedify account with a token pair issued by
    the sandbox (no consent dance); returns the Django user."""
    from genres.accounts import account_link
    from genres.spotify import TokenSet

    sandbox.create_user(spec)
    answer = sandbox.issue_token(spec["id"])
    tokens = TokenSet(
        access_token=answer["access_token"],
        refresh_token=answer.get("refresh_token"),
        expires_at=datetime.now(UTC) + timedelta(seconds=float(answer.get("expires_in", 3600))),
        scope=answer.get("scope", ""),
    )
    account = account_link(profile={"id": spec["id"], "display_name": spec["id"]}, tokens=tokens)
    return account.user


def listener_forget(user: Any) -> None:
    """Makes the listener's next scan a cold, full one again (library rows and harvest time)."""
    from genres.models import LibrarySource, LibraryTrack, SpotifyAccount

    LibraryTrack.objects.filter(user_id=user.pk).delete()
    LibrarySource.objects.filter(user_id=user.pk).delete()
    SpotifyAccount.objects.filter(user_id=user.pk).update(artists_harvested_at=None)


def sandbox_warm(sandbox: Any, user_id: str) -> dict[str, Any]:
    """The sandbox's truth for the user's liked songs. Asking for it also derives every
    track of the library in the sandbox, which keeps them: a timed scan then measures
    Swedify and the network, not the sandbox deriving tracks on cores it shares with the
    scan (Spotify's servers do not run on ours)."""
    return sandbox.truth(user_id)


def artist_cache_clear() -> None:
    """Cold cache: no artist in the database or in the (benchmark's own) cache, and the
    "batch lookup forbidden" memory forgotten."""
    from django.core.cache import cache

    from genres.artists import CACHE_KEY
    from genres.models import Artist
    from genres.spotify import forget_batch_artists_memory

    Artist.objects.all().delete()
    if hasattr(cache, "delete_pattern"):
        cache.delete_pattern(CACHE_KEY.format("*"))
    else:
        cache.clear()  # the local-memory cache of this process only
    forget_batch_artists_memory()


def followed_count(sandbox: Any, user_id: str) -> int:
    """How many artists the sandbox user follows, read over the Web API (before a scan's
    counters are reset)."""
    token = sandbox.issue_token(user_id)["access_token"]
    count, after = 0, None
    while True:
        query = {"type": "artist", "limit": PAGE, **({"after": after} if after else {})}
        request = Request(f"{sandbox.api_url}/me/following?{urlencode(query)}")
        request.add_header("Authorization", f"Bearer {token}")
        with _opener.open(request, timeout=SANDBOX_TIMEOUT) as response:
            block = json.loads(response.read())["artists"]
        count += len(block["items"])
        after = (block.get("cursors") or {}).get("after")
        if not block["items"] or not after:
            return count


@dataclass
class Listener:
    """A benchmark listener: its sandbox id, Django user, library size and scan."""

    spotify_id: str
    user: Any
    songs: int
    truth: dict[str, Any]
    scan_id: str = ""


def listener_make(sandbox: Any, spotify_id: str, songs: int, offset: int) -> Listener:
    """A sandbox user with ``songs`` liked songs (by 0.3 x as many artists, no followed or top
    artists: every artist is looked up, which is what fills a window) linked to a Swedify
    account; the sandbox derives the whole library now, so the timed part does not."""
    spec = listener_spec(
        spotify_id, tracks=songs, artists=max(1, round(songs * ARTISTS_PER_TRACK)), offset=offset
    )
    user = listener_create(sandbox, spec)
    return Listener(spotify_id, user, songs, sandbox_warm(sandbox, spotify_id))


def scan_begin(listener: Listener) -> str:
    """Starts the listener's scan as ``POST /api/scans`` does (queued to the workers)."""
    from genres import scans

    scan, created = scans.scan_start(user=listener.user, sources=["liked"], refresh=True)
    if not created:
        raise RuntimeError(f"scan_start did not start a new scan for {listener.spotify_id}")
    listener.scan_id = str(scan.pk)
    return listener.scan_id
