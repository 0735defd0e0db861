"""Tracks + artist genres -> the genres result. Pure: no database, no Spotify, no clock.

The rule (docs/contract.md, "Genres"): a track belongs to every genre of every one of its artists,
counted once per genre; tracks without an id (local files, unavailable entries) are skipped;
tracks whose artists have no genres are "unclassified", never dropped. Nothing is capped, so
``truncated`` stays false unless a caller really had to cut something.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

UNCLASSIFIED = "Unclassified"


def aggregate(
    tracks: Iterable[tuple[str | None, Sequence[str]]],
    genres_by_artist: Mapping[str, Sequence[str]],
    *,
    truncated: bool = False,
) -> dict[str, Any]:
    """The contract's genres payload (without scanId/cachedAt/schemaVersion).

    ``tracks`` are ``(track_id, artist_ids)`` pairs in library order (newest first); the same
    track seen again (another source) counts once, with the artists of every sighting.
    ``genres_by_artist`` maps artist id -> genre names; an artist missing from it has none.
    Track ids inside each genre keep library order.
    """
    artists_of: dict[str, list[str]] = {}
    for track_id, artist_ids in tracks:
        if not track_id:
            continue
        known = artists_of.setdefault(track_id, [])
        for artist_id in artist_ids:
            if artist_id and artist_id not in known:
                known.append(artist_id)

    members: dict[str, list[str]] = {}
    unclassified: list[str] = []
    all_artists: set[str] = set()
    for track_id, artist_ids in artists_of.items():
        all_artists.update(artist_ids)
        names: dict[str, None] = {}
        for artist_id in artist_ids:
            for name in genres_by_artist.get(artist_id, ()):
                if isinstance(name, str) and name:
                    names[name] = None
        if not names:
            unclassified.append(track_id)
        for name in names:
            members.setdefault(name, []).append(track_id)

    genres = [
        {"name": name, "count": len(ids), "trackIds": ids}
        for name, ids in sorted(members.items(), key=lambda item: (-len(item[1]), item[0]))
    ]
    return {
        "truncated": truncated,
        "totalTracks": len(artists_of),
        "totalArtists": len(all_artists),
        "totalGenres": len(genres),
        "genres": genres,
        "unclassified": {"count": len(unclassified), "trackIds": unclassified},
    }


def summary(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The small form the genres page lists: ``[{"name", "count"}]`` in payload order."""
    return [{"name": genre["name"], "count": genre["count"]} for genre in payload["genres"]]
