"""Deterministic, lazy generation of the artist catalog and of listeners' libraries.

Nothing here is random at run time: every artist, track and date is derived from a hash of the
seed and a position, so the same spec always gives the same library, and a library of 50,000
tracks costs only the ids handed out so far. Only what changes (new likes) is stored.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

from sandbox.genres import SPECIAL, VOCABULARY

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SPOTIFY_ID = re.compile(r"[0-9A-Za-z]{22}")
USER_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

# Share of artists Spotify returns with `genres: []`.
NO_GENRE_FRACTION = 0.10
# Every SPECIAL_EVERY-th catalog artist carries one of the non-ASCII or hostile genres, so a
# user of a few hundred artists meets all of them and the app is tested against them.
SPECIAL_EVERY = 13
SPECIAL_PHASE = 5
# Artists handed out by "new likes" live far beyond any user's slice, so nobody has seen them.
FRESH_ARTIST_BASE = 10**12

# The newest base like is at this instant; new likes made at run time are always newer.
NEWEST_LIKE_AT = 1780315200  # 2026-06-01T12:00:00Z
LIBRARY_SPAN_SECONDS = 10 * 365 * 24 * 3600
MAX_LIKE_GAP_SECONDS = 6 * 3600

# Guards against specs that would exhaust memory or time; far above any realistic library.
MAX_TRACKS = 1_000_000
MAX_ARTISTS = 200_000
MAX_PLAYLISTS = 500
MAX_PLAYLIST_TRACKS = 20_000

TIME_RANGES = ("short_term", "medium_term", "long_term")

_FIRST = (
    "Björn", "Åsa", "Zoë", "José", "Søren", "Łukasz", "Anna", "Elin", "Karin", "Mats", "Oskar",
    "Leila", "Noah", "Maja", "Ida", "Kofi", "Yuki", "Min-jun", "Chloé", "Dmitri", "Ingrid",
    "Nils", "Freja", "Mehmet", "Aisha", "Lucas", "Sofia", "Håkan", "Astrid", "Emil",
)  # fmt: skip
_LAST = (
    "Lindqvist", "Andersson", "Nyström", "Öberg", "García", "Kowalski", "Nakamura", "Kim",
    "Okafor", "Müller", "Rossi", "Dubois", "Ivanova", "Papadopoulos", "Silva", "Berg", "Holm",
    "Sjöberg", "Ekström", "Wallin",
)  # fmt: skip
_ADJECTIVES = (
    "Velvet", "Neon", "Silent", "Golden", "Electric", "Wild", "Paper", "Midnight", "Crystal",
    "Northern", "Broken", "Lazy", "Hollow", "Scarlet", "Frozen", "Lucky", "Cosmic", "Quiet",
    "Sunny", "Iron", "Blue", "Tender", "Restless", "Secret",
)  # fmt: skip
_NOUNS = (
    "Harbor", "Wolves", "Lights", "Garden", "Echo", "Machines", "Rivers", "Pilots", "Foxes",
    "Satellites", "Tides", "Ghosts", "Parade", "Circus", "Orchard", "Signals", "Islands",
    "Mirrors", "Owls", "Engines", "Summer", "Heart", "Road", "Dreams", "Fire", "Snow",
)  # fmt: skip
_TRACK_SUFFIXES = ("", "", "", "", " (Remix)", " - Live", " (feat. Someone)", " - 2019 Remaster")
# A few artist names that break careless HTML and string handling, like real ones do.
_ODD_ARTIST_NAMES = (
    '<b>Bold</b> & "Quoted"',
    "AC/DC Tribute",
    "Rock'n'Roll Ödmjuk",
    "{artist}",
    "Motörhead Cover Band",
    "!!!",
)
_ODD_ARTIST_EVERY = 101


class SpecError(ValueError):
    """A user or playlist spec that cannot be used; the message says what is wrong."""


class Draw:
    """A deterministic stream of numbers derived from a hash of ``parts``.

    The first 16 bytes of the hash are the Spotify id (128 bits, like Spotify's own ids);
    the rest feed :meth:`unit`, rehashing when used up.
    """

    __slots__ = ("_digest", "_key", "_pos", "_round")

    def __init__(self, *parts: object) -> None:
        self._key = "\x1f".join(map(str, parts)).encode()
        self._digest = hashlib.blake2b(self._key, digest_size=64).digest()
        self._pos = 16
        self._round = 0

    @property
    def id(self) -> str:
        return base62(self._digest[:16])

    def unit(self) -> float:
        if self._pos + 4 > len(self._digest):
            self._round += 1
            self._digest = hashlib.blake2b(
                self._key + b"\x1e" + str(self._round).encode(), digest_size=64
            ).digest()
            self._pos = 0
        value = int.from_bytes(self._digest[self._pos : self._pos + 4], "big")
        self._pos += 4
        return value / 2**32

    def below(self, n: int) -> int:
        return int(self.unit() * n)

    def pick(self, options: tuple[str, ...]) -> str:
        return options[self.below(len(options))]


def base62(raw: bytes) -> str:
    """A 22-character base62 id for 16 bytes, as Spotify writes its 128-bit ids."""
    # Two 11-digit halves: arithmetic on machine-sized ints is much faster than on 128 bits.
    high, low = divmod(int.from_bytes(raw, "big"), _HALF)
    chars = []
    for half in (low, high):
        for _ in range(11):
            half, rest = divmod(half, 62)
            chars.append(BASE62[rest])
    return "".join(reversed(chars))


_HALF = 62**11


def stable_number(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b("\x1f".join(map(str, parts)).encode()).digest()[:8])


@dataclass(frozen=True, slots=True)
class Artist:
    index: int
    id: str
    name: str
    genres: tuple[str, ...]
    has_images: bool

    @property
    def uri(self) -> str:
        return f"spotify:artist:{self.id}"


@dataclass(frozen=True, slots=True)
class Track:
    """A track as it sits in a library; ``id`` is None for local files."""

    id: str | None
    name: str
    artists: tuple[Artist, ...]
    album_id: str | None
    album_name: str
    duration_ms: int
    local_artist: str | None = None

    @property
    def is_local(self) -> bool:
        return self.id is None

    @property
    def uri(self) -> str:
        if self.id is None:
            parts = (self.local_artist or "", self.album_name, self.name)
            fields = ":".join(quote_plus(p) for p in parts)
            return f"spotify:local:{fields}:{self.duration_ms // 1000}"
        return f"spotify:track:{self.id}"


# (added_at as Unix seconds, track or None for an entry Spotify no longer has).
Entry = tuple[int, Track | None]


def _artist_name(draw: Draw, index: int) -> str:
    if index % _ODD_ARTIST_EVERY == 50:
        return _ODD_ARTIST_NAMES[(index // _ODD_ARTIST_EVERY) % len(_ODD_ARTIST_NAMES)]
    style = draw.below(6)
    if style == 0:
        return f"{draw.pick(_FIRST)} {draw.pick(_LAST)}"
    if style == 1:
        return f"The {draw.pick(_ADJECTIVES)} {draw.pick(_NOUNS)}"
    if style == 2:
        return f"{draw.pick(_ADJECTIVES)} {draw.pick(_NOUNS)}"
    if style == 3:
        return f"{draw.pick(_FIRST)} & the {draw.pick(_NOUNS)}"
    if style == 4:
        return f"DJ {draw.pick(_NOUNS)}"
    return draw.pick(_FIRST)


def make_artist(seed: str, index: int) -> Artist:
    """Catalog artist ``index`` for ``seed``: always the same id, name and genres."""
    draw = Draw(seed, "artist", index)
    name = _artist_name(draw, index)
    genres: list[str] = []
    special = index % SPECIAL_EVERY == SPECIAL_PHASE
    if special or draw.unit() >= NO_GENRE_FRACTION:
        roll = draw.unit()
        count = 1 if roll < 0.45 else 2 if roll < 0.8 else 3
        for _ in range(count):
            # Cubed so that families and headliners are common and the tail is long.
            genre = VOCABULARY[int(len(VOCABULARY) * draw.unit() ** 3)]
            if genre not in genres:
                genres.append(genre)
        if special:
            genres[-1] = SPECIAL[(index // SPECIAL_EVERY) % len(SPECIAL)]
            genres = list(dict.fromkeys(genres))
    return Artist(
        index=index,
        id=draw.id,
        name=name,
        genres=tuple(genres),
        has_images=draw.unit() >= 0.15,
    )


class Catalog:
    """The global artist catalog: artist i is the same for every user of the same seed.

    Artists are built on first use. Users' slices are remembered so GET /v1/artists/{id} also
    answers ids a client kept from an earlier run of the same seed.
    """

    def __init__(self, seed: str) -> None:
        self.seed = seed
        self._artists: dict[int, Artist] = {}
        self._index_by_id: dict[str, int] = {}
        self._slices: set[tuple[int, int]] = set()
        self._pending: list[tuple[int, int]] = []
        self._fresh = 0

    def artist(self, index: int) -> Artist:
        artist = self._artists.get(index)
        if artist is None:
            artist = make_artist(self.seed, index)
            self._artists[index] = artist
            self._index_by_id[artist.id] = index
        return artist

    def find(self, artist_id: str) -> Artist | None:
        """The artist with this id, if it is in any user's slice or was handed out."""
        if artist_id not in self._index_by_id and self._pending:
            # Ids a client kept from an earlier run: index the slices once, on the first miss.
            for start, count in self._pending:
                for index in range(start, start + count):
                    self._index_by_id.setdefault(Draw(self.seed, "artist", index).id, index)
            self._pending.clear()
        index = self._index_by_id.get(artist_id)
        return None if index is None else self.artist(index)

    def add_slice(self, start: int, count: int) -> None:
        if (start, count) not in self._slices:
            self._slices.add((start, count))
            self._pending.append((start, count))

    def fresh(self, count: int) -> list[Artist]:
        """Artists no user's slice contains, for likes that bring someone new."""
        artists = [self.artist(FRESH_ARTIST_BASE + self._fresh + i) for i in range(count)]
        self._fresh += count
        return artists


def _fraction(data: dict[str, Any], name: str, default: float) -> float:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise SpecError(f"{name} must be a number from 0 to 1")
    return float(value)


def _count(data: dict[str, Any], name: str, default: int, maximum: int) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise SpecError(f"{name} must be an integer from 0 to {maximum}")
    return value


@dataclass(frozen=True)
class PlaylistSpec:
    name: str
    tracks: int = 0
    owner: str = "self"
    public: bool = False
    collaborative: bool = False
    description: str = ""

    @classmethod
    def parse(cls, data: object) -> PlaylistSpec:
        if not isinstance(data, dict):
            raise SpecError("each playlist must be an object")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise SpecError("playlist name must be a non-empty string")
        owner = data.get("owner", "self")
        if owner not in ("self", "other"):
            raise SpecError('playlist owner must be "self" or "other"')
        description = data.get("description", "")
        if not isinstance(description, str):
            raise SpecError("playlist description must be a string")
        return cls(
            name=name,
            tracks=_count(data, "tracks", 0, MAX_PLAYLIST_TRACKS),
            owner=owner,
            public=bool(data.get("public", False)),
            collaborative=bool(data.get("collaborative", False)),
            description=description,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tracks": self.tracks,
            "owner": self.owner,
            "public": self.public,
            "collaborative": self.collaborative,
            "description": self.description,
        }


@dataclass(frozen=True)
class UserSpec:
    """What a sandbox user's library looks like; the same spec always gives the same library."""

    id: str
    display_name: str
    tracks: int
    artists: int
    artist_offset: int
    followed_fraction: float = 0.3
    top_fraction: float = 0.2
    null_fraction: float = 0.01
    local_fraction: float = 0.02
    multi_artist_fraction: float = 0.15
    playlists: tuple[PlaylistSpec, ...] = field(default_factory=tuple)
    allowlisted: bool = True
    seed: str = ""

    @classmethod
    def parse(cls, data: object) -> UserSpec:
        if not isinstance(data, dict):
            raise SpecError("a user spec must be a JSON object")
        user_id = data.get("id")
        if not isinstance(user_id, str) or not USER_ID.fullmatch(user_id):
            raise SpecError("id must be 1-64 characters of letters, digits, '.', '_' or '-'")
        tracks = _count(data, "tracks", 0, MAX_TRACKS)
        # Roughly Spotify's shape: 10,000 liked tracks by about 3,000 artists.
        default_artists = 0 if tracks == 0 else max(1, round(tracks * 0.3))
        artists = _count(data, "artists", default_artists, MAX_ARTISTS)
        if tracks and not artists:
            raise SpecError("a user with tracks needs at least one artist")
        # Without an explicit offset users get far-apart slices, so they share nothing.
        default_offset = stable_number("offset", user_id) % 1000 * 100_000
        offset = _count(data, "artist_offset", default_offset, FRESH_ARTIST_BASE // 2)
        null_fraction = _fraction(data, "null_fraction", 0.01)
        local_fraction = _fraction(data, "local_fraction", 0.02)
        if null_fraction + local_fraction > 1:
            raise SpecError("null_fraction + local_fraction must not exceed 1")
        playlists = data.get("playlists", [])
        if not isinstance(playlists, list) or len(playlists) > MAX_PLAYLISTS:
            raise SpecError(f"playlists must be a list of at most {MAX_PLAYLISTS}")
        display_name = data.get("display_name", user_id)
        if not isinstance(display_name, str):
            raise SpecError("display_name must be a string")
        seed = data.get("seed", user_id)
        if not isinstance(seed, str | int) or isinstance(seed, bool):
            raise SpecError("seed must be a string or an integer")
        return cls(
            id=user_id,
            display_name=display_name,
            tracks=tracks,
            artists=artists,
            artist_offset=offset,
            followed_fraction=_fraction(data, "followed_fraction", 0.3),
            top_fraction=_fraction(data, "top_fraction", 0.2),
            null_fraction=null_fraction,
            local_fraction=local_fraction,
            multi_artist_fraction=_fraction(data, "multi_artist_fraction", 0.15),
            playlists=tuple(PlaylistSpec.parse(p) for p in playlists),
            allowlisted=bool(data.get("allowlisted", True)),
            seed=str(seed),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "display_name": self.display_name,
            "tracks": self.tracks,
            "artists": self.artists,
            "artist_offset": self.artist_offset,
            "followed_fraction": self.followed_fraction,
            "top_fraction": self.top_fraction,
            "null_fraction": self.null_fraction,
            "local_fraction": self.local_fraction,
            "multi_artist_fraction": self.multi_artist_fraction,
            "playlists": [p.to_json() for p in self.playlists],
            "allowlisted": self.allowlisted,
            "seed": self.seed,
        }


class Library:
    """One listener's liked songs, newest first: new likes (stored) then the base (derived).

    Position 0 is the newest like. Base track i is derived from the seed when first asked for
    (creating even a 50,000-track user stays cheap) and then kept: pages read again are
    served without deriving again (the sandbox shares the machine's cores with the code it
    serves, so its CPU per page shows in their timings). Only ids handed out are indexed, so
    a playlist add can be checked against the library later.
    """

    def __init__(self, spec: UserSpec, catalog: Catalog) -> None:
        self.spec = spec
        self.catalog = catalog
        self._key = f"{catalog.seed}\x1f{spec.seed}"
        self._extras: list[tuple[int, Track]] = []  # oldest first, so appending is cheap
        self._ids: dict[str, int] = {}  # track id -> base index, or -(k + 1) for extra k
        self._unliked: dict[str, Track] = {}  # added likes taken back (remove_likes)
        self._fully_indexed = spec.tracks == 0
        self._followed: list[Artist] | None = None
        self._top: dict[str, list[Artist]] = {}
        # Spread the base over about ten years, but never more than six hours between likes.
        self._gap = max(60, min(MAX_LIKE_GAP_SECONDS, LIBRARY_SPAN_SECONDS // max(1, spec.tracks)))
        catalog.add_slice(spec.artist_offset, spec.artists)
        self._base: list[Entry | None] = [None] * spec.tracks

    def __len__(self) -> int:
        return self.spec.tracks + len(self._extras)

    def entry(self, position: int) -> Entry:
        extras = len(self._extras)
        if position < extras:
            return self._extras[extras - 1 - position]
        return self._base_entry(position - extras)

    def page(self, offset: int, limit: int) -> list[Entry]:
        return [self.entry(p) for p in range(offset, min(offset + limit, len(self)))]

    def entries(self) -> list[Entry]:
        return [self.entry(p) for p in range(len(self))]

    def find(self, track_id: str) -> Track | None:
        """The library's track with this id, or None; indexes the whole base once on a miss."""
        if track_id not in self._ids and not self._fully_indexed:
            for index in range(self.spec.tracks):
                self._base_entry(index)
            self._fully_indexed = True
        where = self._ids.get(track_id)
        if where is None:
            return self._unliked.get(track_id)
        return self._extras[-where - 1][1] if where < 0 else self._base_entry(where)[1]

    def slice_artist(self, draw: Draw) -> Artist:
        # Half the picks favour the first fifth of the slice: some artists have many tracks.
        count = self.spec.artists
        pool = max(1, count // 5) if draw.unit() < 0.5 else count
        return self.catalog.artist(self.spec.artist_offset + draw.below(pool))

    def make_track(self, draw: Draw, primary: Artist | None = None) -> Track:
        """A regular track whose artists come from this user's slice."""
        artists = [primary or self.slice_artist(draw)]
        if self.spec.artists > 1 and draw.unit() < self.spec.multi_artist_fraction:
            wanted = 1 + (draw.unit() < 0.35)
            for _ in range(8 * wanted):
                if len(artists) > wanted:
                    break
                candidate = self.slice_artist(draw)
                if candidate not in artists:
                    artists.append(candidate)
        album = Draw(self._key, "album", artists[0].index, draw.below(4))
        return Track(
            id=draw.id,
            name=f"{draw.pick(_ADJECTIVES)} {draw.pick(_NOUNS)}{draw.pick(_TRACK_SUFFIXES)}",
            artists=tuple(artists),
            album_id=album.id,
            album_name=f"{album.pick(_ADJECTIVES)} {album.pick(_NOUNS)}",
            duration_ms=120_000 + draw.below(300_000),
        )

    def _base_entry(self, index: int) -> Entry:
        entry = self._base[index]
        if entry is None:
            entry = self._base[index] = self._derive_entry(index)
        return entry

    def _derive_entry(self, index: int) -> Entry:
        draw = Draw(self._key, "track", index)
        # Strictly decreasing: entry i falls inside its own gap-sized step back from the newest.
        added_at = NEWEST_LIKE_AT - index * self._gap - draw.below(self._gap)
        kind = draw.unit()
        if kind < self.spec.null_fraction:
            return added_at, None
        if kind < self.spec.null_fraction + self.spec.local_fraction:
            return added_at, Track(
                id=None,
                name=f"{draw.pick(_NOUNS)} demo {index}",
                artists=(),
                album_id=None,
                album_name="My Recordings",
                duration_ms=60_000 + draw.below(240_000),
                local_artist=draw.pick(_FIRST),
            )
        # The first `artists` likes go through the whole slice once, so every artist of the
        # slice (and every special genre in it) is in the library, whatever the skew does.
        covering = index < self.spec.artists
        primary = self.catalog.artist(self.spec.artist_offset + index) if covering else None
        track = self.make_track(draw, primary)
        self._ids[track.id] = index
        return added_at, track

    def add_likes(self, count: int, new_artists: list[Artist], now: int) -> list[Track]:
        """Put ``count`` new likes at the front; each of ``new_artists`` appears at least once."""
        newest = self.entry(0)[0] if len(self) else now
        added: list[Track] = []
        for n in range(count):
            k = len(self._extras)
            draw = Draw(self._key, "like", k)
            primary = new_artists[n] if n < len(new_artists) else None
            if primary is None and not self.spec.artists and new_artists:
                primary = new_artists[n % len(new_artists)]
            track = self.make_track(draw, primary)
            newest = max(now, newest + 1)
            self._extras.append((newest, track))
            self._ids[track.id] = -(k + 1)
            added.append(track)
        return added

    def remove_likes(self, track_ids: Iterable[str]) -> list[str]:
        """Unlike tracks liked after the start (``add_likes``); the ids really removed.

        Base likes are derived from the seed by position and stay: a test unlikes what it
        added. An unliked track stays findable, as Spotify's catalog keeps it.
        """
        wanted = set(track_ids)
        kept = [(at, track) for at, track in self._extras if track.id not in wanted]
        removed = [track.id for _, track in self._extras if track.id in wanted]
        if not removed:
            return []
        for _, track in self._extras:
            if track.id in wanted:
                self._unliked[track.id] = track
        self._extras = kept
        for k, (_, track) in enumerate(kept):
            self._ids[track.id] = -(k + 1)
        for track_id in removed:
            self._ids.pop(track_id, None)
        return removed

    def slice_artists(self) -> list[Artist]:
        return [self.catalog.artist(self.spec.artist_offset + j) for j in range(self.spec.artists)]

    def followed(self) -> list[Artist]:
        """Followed artists, ordered by id so an ``after`` cursor is stable."""
        if self._followed is None:
            chosen = [
                self.catalog.artist(self.spec.artist_offset + j)
                for j in range(self.spec.artists)
                if Draw(self._key, "follow", j).unit() < self.spec.followed_fraction
            ]
            self._followed = sorted(chosen, key=lambda artist: artist.id)
        return self._followed

    def top(self, time_range: str) -> list[Artist]:
        """Top artists for a time range; each range picks and orders its own subset."""
        if time_range not in self._top:
            scored = []
            for j in range(self.spec.artists):
                draw = Draw(self._key, "top", time_range, j)
                if draw.unit() < self.spec.top_fraction:
                    scored.append((draw.unit(), j))
            scored.sort()
            offset = self.spec.artist_offset
            self._top[time_range] = [self.catalog.artist(offset + j) for _, j in scored]
        return self._top[time_range]


def genre_truth(tracks: list[Track | None]) -> dict[str, Any]:
    """Swedify's genre rule applied to ``tracks``: the expected answer of a scan.

    A track belongs to every genre of every one of its artists; tracks without an id are
    skipped; tracks whose artists have no genres are unclassified; duplicates count once.
    """
    genres: dict[str, set[str]] = {}
    unclassified: set[str] = set()
    track_ids: set[str] = set()
    artist_ids: set[str] = set()
    for track in tracks:
        if track is None or track.id is None:
            continue
        track_ids.add(track.id)
        names = set()
        for artist in track.artists:
            artist_ids.add(artist.id)
            names.update(artist.genres)
        for name in names:
            genres.setdefault(name, set()).add(track.id)
        if not names:
            unclassified.add(track.id)
    return {
        "totalTracks": len(track_ids),
        "totalArtists": len(artist_ids),
        "totalGenres": len(genres),
        "genres": {name: sorted(ids) for name, ids in sorted(genres.items())},
        "unclassified": sorted(unclassified),
    }


# The users every sandbox starts with. `listener` and `bigfan` share half of listener's
# artists (offsets 0 and 125), which exercises Swedify's shared artist cache.
BUILT_IN_USERS: tuple[dict[str, Any], ...] = (
    {
        "id": "listener",
        "display_name": "Sandbox Listener",
        "tracks": 600,
        "artists": 250,
        "artist_offset": 0,
        "playlists": [
            {"name": "Road trip", "tracks": 25, "owner": "self", "public": True},
            {"name": "Discover Weekly", "tracks": 30, "owner": "other", "public": True},
            {"name": "Chill", "tracks": 0, "owner": "self"},
        ],
    },
    {
        "id": "bigfan",
        "display_name": "Big Fan",
        "tracks": 10_000,
        "artists": 3_000,
        "artist_offset": 125,
        "playlists": [
            {"name": "Everything", "tracks": 300, "owner": "self"},
            {"name": "Friends' mix", "tracks": 40, "owner": "other", "collaborative": True},
        ],
    },
    {"id": "newbie", "display_name": "New Listener", "tracks": 0, "artists": 0},
    {
        "id": "outsider",
        "display_name": "Not Allow-listed",
        "tracks": 120,
        "artists": 60,
        "artist_offset": 50_000,
        "allowlisted": False,
    },
)
