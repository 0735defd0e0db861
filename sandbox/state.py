"""The sandbox's world: users, their libraries and playlists, tokens, faults and stats.

One re-entrant lock guards users, playlists and tokens; handlers hold it only while they read
or change them, never while a request sleeps for injected latency.
"""

from __future__ import annotations

import base64
import hashlib
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sandbox.config import RUNTIME_OPTIONS, SandboxConfig
from sandbox.faults import Faults, Stats
from sandbox.library import (
    BUILT_IN_USERS,
    NEWEST_LIKE_AT,
    Artist,
    Catalog,
    Draw,
    Library,
    PlaylistSpec,
    Track,
    UserSpec,
)
from sandbox.tokens import AuthStore

# Owner of the playlists a user follows but does not own.
OTHER_OWNER = ("sandbox-curator", "Sandbox Curator")


@dataclass
class PlaylistItem:
    track: Track
    added_at: int
    added_by: str


@dataclass
class Playlist:
    id: str
    name: str
    owner_id: str
    owner_name: str
    public: bool
    collaborative: bool
    description: str
    items: list[PlaylistItem] = field(default_factory=list)
    version: int = 1

    @property
    def snapshot_id(self) -> str:
        # Opaque like Spotify's, and different after every change.
        digest = hashlib.blake2b(f"{self.id}:{self.version}".encode(), digest_size=20).digest()
        return base64.b64encode(self.version.to_bytes(4, "big") + digest).decode()

    def can_edit(self, user_id: str) -> bool:
        return self.owner_id == user_id or self.collaborative


@dataclass
class User:
    spec: UserSpec
    library: Library
    playlist_ids: list[str] = field(default_factory=list)  # as /v1/me/playlists lists them
    created_playlists: int = 0

    @property
    def id(self) -> str:
        return self.spec.id


class Sandbox:
    """All mutable state of one sandbox instance."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.stats = Stats()
        self.faults = Faults(config.seed, config.faults())
        self.reset()

    def reset(self) -> None:
        """Back to the start-time state: built-in and configured users, no tokens, no faults."""
        with self.lock:
            self.options: dict[str, Any] = self.config.runtime()
            self.catalog = Catalog(self.config.seed)
            self.users: dict[str, User] = {}
            self.playlists: dict[str, Playlist] = {}
            self.auth = AuthStore()
            # Tracks that live only in playlists (others' playlists), findable for adds.
            self._loose_tracks: dict[str, Track] = {}
            specs = list(BUILT_IN_USERS) if self.config.default_users else []
            for spec in specs + self.config.user_specs():
                self.put_user(spec)
        self.faults.clear()
        self.stats.reset()

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Change runtime options (see config.RUNTIME_OPTIONS); raises ValueError."""
        unknown = set(changes) - set(RUNTIME_OPTIONS)
        if unknown:
            raise ValueError(f"unknown options: {', '.join(sorted(unknown))}")
        for name in ("token_ttl", "refresh_ttl", "code_ttl"):
            value = changes.get(name, 1)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer (seconds)")
        uris = changes.get("redirect_uris")
        if uris is not None and (
            not isinstance(uris, list) or not all(isinstance(u, str) for u in uris)
        ):
            raise ValueError("redirect_uris must be a list of strings, or null for loopback")
        with self.lock:
            for name in ("extended_quota", "legacy_shape", "rotate_refresh_tokens"):
                if name in changes:
                    self.options[name] = bool(changes[name])
            for name in ("token_ttl", "refresh_ttl", "code_ttl", "redirect_uris"):
                if name in changes:
                    self.options[name] = changes[name]
            return dict(self.options)

    # Users and libraries

    def put_user(self, data: object) -> User:
        """Create or replace a user from a spec; replacing drops the user's old playlists."""
        spec = UserSpec.parse(data)
        with self.lock:
            old = self.users.get(spec.id)
            if old is not None:
                for playlist_id in old.playlist_ids:
                    self.playlists.pop(playlist_id, None)
            user = User(spec=spec, library=Library(spec, self.catalog))
            self.users[spec.id] = user
            for number, playlist_spec in enumerate(spec.playlists):
                self._add_spec_playlist(user, playlist_spec, f"spec{number}")
            return user

    def remove_user(self, user_id: str) -> bool:
        with self.lock:
            user = self.users.pop(user_id, None)
            if user is None:
                return False
            for playlist_id in user.playlist_ids:
                self.playlists.pop(playlist_id, None)
            return True

    def add_playlist_from_spec(self, user: User, data: object) -> Playlist:
        """A playlist the way a user spec describes one (control API)."""
        spec = PlaylistSpec.parse(data)
        with self.lock:
            user.created_playlists += 1
            return self._add_spec_playlist(user, spec, f"control{user.created_playlists}")

    def _add_spec_playlist(self, user: User, spec: PlaylistSpec, key: str) -> Playlist:
        library = user.library
        owner_id, owner_name = (
            (user.id, user.spec.display_name) if spec.owner == "self" else OTHER_OWNER
        )
        playlist = Playlist(
            id=Draw(self.catalog.seed, user.spec.seed, "playlist", key).id,
            name=spec.name,
            owner_id=owner_id,
            owner_name=owner_name,
            public=spec.public,
            collaborative=spec.collaborative,
            description=spec.description,
        )
        tracks: list[Track] = []
        if spec.owner == "self" and len(library):
            # Own playlists hold liked songs, like most listeners' do.
            rng = random.Random(f"{self.catalog.seed}/{user.spec.seed}/{key}")
            for position in rng.sample(range(len(library)), min(len(library), 2 * spec.tracks)):
                track = library.entry(position)[1]
                if track is not None and track.id is not None:
                    tracks.append(track)
                if len(tracks) == spec.tracks:
                    break
        # Others' playlists (and own ones the library cannot fill) hold songs not liked.
        number = 0
        while len(tracks) < spec.tracks:
            track = library.make_track(Draw(self.catalog.seed, user.spec.seed, key, number))
            self._loose_tracks[track.id] = track
            tracks.append(track)
            number += 1
        for n, track in enumerate(tracks):
            added_at = NEWEST_LIKE_AT - (len(tracks) - n) * 3600
            playlist.items.append(PlaylistItem(track, added_at, owner_id))
        self.playlists[playlist.id] = playlist
        user.playlist_ids.insert(0, playlist.id)
        return playlist

    def add_likes(
        self, user: User, count: int, new_artists: int
    ) -> tuple[list[Track], list[Artist]]:
        with self.lock:
            artists = self.catalog.fresh(new_artists)
            tracks = user.library.add_likes(count, artists, int(time.time()))
            return tracks, artists

    def find_track(self, track_id: str, prefer: User | None = None) -> Track | None:
        """A track by id from any library or playlist, checking ``prefer``'s library first."""
        with self.lock:
            track = self._loose_tracks.get(track_id)
            if track is not None:
                return track
            users = [prefer] if prefer else []
            users += [u for u in self.users.values() if u is not prefer]
            for user in users:
                track = user.library.find(track_id)
                if track is not None:
                    return track
            for playlist in self.playlists.values():
                for item in playlist.items:
                    if item.track.id == track_id:
                        return item.track
            return None

    # Playlists

    def create_playlist(
        self, owner: User, name: str, public: bool, collaborative: bool, description: str
    ) -> Playlist:
        with self.lock:
            owner.created_playlists += 1
            playlist = Playlist(
                id=Draw(self.catalog.seed, owner.spec.seed, "created", owner.created_playlists).id,
                name=name,
                owner_id=owner.id,
                owner_name=owner.spec.display_name,
                public=public,
                collaborative=collaborative,
                description=description,
            )
            self.playlists[playlist.id] = playlist
            # Spotify lists a new playlist first.
            owner.playlist_ids.insert(0, playlist.id)
            return playlist

    def add_items(
        self, playlist: Playlist, tracks: list[Track], added_by: str, position: int | None
    ) -> str:
        """Insert ``tracks`` as they are (no de-duplication, like Spotify); the new snapshot."""
        with self.lock:
            now = int(time.time())
            items = [PlaylistItem(track, now, added_by) for track in tracks]
            at = len(playlist.items) if position is None else min(position, len(playlist.items))
            playlist.items[at:at] = items
            playlist.version += 1
            return playlist.snapshot_id

    def delete_playlist(self, user: User, playlist_id: str) -> bool:
        """The user deletes a playlist in the Spotify app: it leaves their playlists. Like
        Spotify, the playlist itself stays (its owner can still read and add to it)."""
        with self.lock:
            if playlist_id not in user.playlist_ids:
                return False
            user.playlist_ids.remove(playlist_id)
            return True

    def user_playlists(self, user: User) -> list[Playlist]:
        with self.lock:
            return [self.playlists[pid] for pid in user.playlist_ids if pid in self.playlists]
