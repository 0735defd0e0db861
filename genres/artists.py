"""The shared artist -> genres cache, for every listener.

Two layers: Redis (through Django's cache; fast, may vanish) in front of the ``Artist`` table
(durable, survives a Redis outage). A Redis read that fails is a miss and falls through to the
database; a Redis write that fails is logged and forgotten. Values carry a schema version and
readers tolerate missing and unknown fields, because two app versions share one Redis while a
blue-green cutover overlaps them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from genres.models import Artist

logger = logging.getLogger(__name__)

CACHE_KEY = "artist:v1:{}"
CACHE_VERSION = 1
# Redis keeps an artist two weeks; the database a month before the artist is refetched
# (genres change slowly, and every lookup costs one request in Development Mode).
ARTIST_CACHE_TTL = timedelta(days=14)
ARTIST_MAX_AGE = timedelta(days=30)
# Ids per database query and per Redis round trip.
BATCH = 500
NAME_MAX = 512


@dataclass(frozen=True)
class ArtistInfo:
    id: str
    name: str
    genres: tuple[str, ...]
    fetched_at: datetime


def _chunks(items: list[str], size: int = BATCH) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _from_cache_value(artist_id: str, value: Any, oldest: datetime) -> ArtistInfo | None:
    """A cached value as ArtistInfo, or None when it is unusable or too old."""
    if not isinstance(value, dict):
        return None
    genres = value.get("genres")
    if not isinstance(genres, list):
        return None
    fetched_at = parse_datetime(value["at"]) if isinstance(value.get("at"), str) else None
    if fetched_at is None:
        # No age recorded (an older writer): the Redis TTL still bounds it.
        fetched_at = timezone.now()
    if fetched_at < oldest:
        return None
    name = value.get("name")
    return ArtistInfo(
        id=artist_id,
        name=name if isinstance(name, str) else "",
        genres=tuple(g for g in genres if isinstance(g, str)),
        fetched_at=fetched_at,
    )


def _cache_value(info: ArtistInfo) -> dict[str, Any]:
    return {
        "v": CACHE_VERSION,
        "name": info.name,
        "genres": list(info.genres),
        "at": info.fetched_at.isoformat(),
    }


def _cache_get_many(keys: list[str]) -> dict[str, Any]:
    try:
        return cache.get_many(keys)
    except Exception:  # any cache failure is a miss, never a failed scan
        logger.warning("artist cache read failed; reading the database", exc_info=True)
        return {}


def _cache_set_many(infos: Iterable[ArtistInfo]) -> None:
    values = {CACHE_KEY.format(info.id): _cache_value(info) for info in infos}
    if not values:
        return
    try:
        cache.set_many(values, timeout=int(ARTIST_CACHE_TTL.total_seconds()))
    except Exception:  # the database already holds the artists
        logger.warning("artist cache write failed; continuing", exc_info=True)


def artists_lookup(ids: Iterable[str], *, now: datetime | None = None) -> dict[str, ArtistInfo]:
    """The fresh (younger than ARTIST_MAX_AGE) known artists among ``ids``; others are absent."""
    wanted = list(dict.fromkeys(i for i in ids if i))
    if not wanted:
        return {}
    oldest = (now or timezone.now()) - ARTIST_MAX_AGE
    found: dict[str, ArtistInfo] = {}
    for chunk in _chunks(wanted):
        cached = _cache_get_many([CACHE_KEY.format(i) for i in chunk])
        for artist_id in chunk:
            info = _from_cache_value(artist_id, cached.get(CACHE_KEY.format(artist_id)), oldest)
            if info is not None:
                found[artist_id] = info
    missing = [i for i in wanted if i not in found]
    warmed: list[ArtistInfo] = []
    for chunk in _chunks(missing):
        rows = Artist.objects.filter(spotify_id__in=chunk, fetched_at__gte=oldest)
        for row in rows.only("spotify_id", "name", "genres", "fetched_at"):
            genres = row.genres if isinstance(row.genres, list) else []
            info = ArtistInfo(row.spotify_id, row.name, tuple(genres), row.fetched_at)
            found[row.spotify_id] = info
            warmed.append(info)
    # Put what only the database knew back in front, so the next listener hits Redis.
    _cache_set_many(warmed)
    return found


def info_from_spotify(
    artist_id: str, artist: Mapping[str, Any] | None, now: datetime
) -> ArtistInfo:
    """ArtistInfo from a Spotify artist object; None (unknown to Spotify) has no genres."""
    if not artist:
        return ArtistInfo(artist_id, "", (), now)
    genres = artist.get("genres") or []
    name = artist.get("name") if isinstance(artist.get("name"), str) else ""
    return ArtistInfo(
        id=artist_id,
        name=name[:NAME_MAX],
        genres=tuple(dict.fromkeys(g for g in genres if isinstance(g, str) and g)),
        fetched_at=now,
    )


def artists_store(
    artists: Mapping[str, Mapping[str, Any] | None] | Iterable[Mapping[str, Any]],
    *,
    now: datetime | None = None,
) -> list[ArtistInfo]:
    """Store Spotify artist objects in the database and Redis; returns what was stored.

    Accepts ``{id: artist or None}`` (a lookup answer; None = Spotify does not know the id,
    remembered as "no genres" so it is not asked again every scan) or a list of full artist
    objects (a harvest of followed or top artists).
    """
    now = now or timezone.now()
    if isinstance(artists, Mapping):
        pairs = list(artists.items())
    else:
        pairs = [(a.get("id"), a) for a in artists if isinstance(a, Mapping)]
    infos = {
        artist_id: info_from_spotify(artist_id, artist, now)
        for artist_id, artist in pairs
        if isinstance(artist_id, str) and artist_id
    }
    if not infos:
        return []
    # In id order: two scans storing the same artists lock their rows in the same order.
    ordered = sorted(infos.values(), key=lambda info: info.id)
    for start in range(0, len(ordered), BATCH):
        Artist.objects.bulk_create(
            [
                Artist(
                    spotify_id=info.id,
                    name=info.name,
                    genres=list(info.genres),
                    fetched_at=info.fetched_at,
                )
                for info in ordered[start : start + BATCH]
            ],
            update_conflicts=True,
            unique_fields=["spotify_id"],
            update_fields=["name", "genres", "fetched_at"],
        )
    _cache_set_many(ordered)
    return ordered
