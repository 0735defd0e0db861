"""The Web API under /v1, as a Development-Mode app sees it in 2026.

:func:`serve` runs every request through the same pipeline Spotify's edge would: scripted
connection drops, latency, authentication, rolling-window rate limit, per-group quota,
injected errors, the allow-list, then the endpoint itself.
"""

from __future__ import annotations

import re
import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from sandbox.accounts import authenticate
from sandbox.faults import LogEntry, ScriptedFault
from sandbox.library import SPOTIFY_ID, TIME_RANGES, Artist, Draw, Track
from sandbox.tokens import AccessToken
from sandbox.web import Request, Response, api_error, json_response

if TYPE_CHECKING:
    from sandbox.state import Playlist, Sandbox, User

MAX_PAGE = 50  # limit of every paged endpoint
MAX_BATCH_IDS = 50  # GET /v1/artists?ids=
MAX_ADD_URIS = 100  # POST /v1/playlists/{id}/items
MAX_REMOVE_URIS = 100  # DELETE /v1/playlists/{id}/items
DEFAULT_LIMIT = 20
NOT_REGISTERED = (
    "Check settings on developer.spotify.com/dashboard, the user may not be registered."
)
TRACK_URI = re.compile(r"spotify:track:([0-9A-Za-z]{22})")
ERROR_MESSAGES = {
    429: "API rate limit exceeded",
    500: "Server error.",
    502: "Bad gateway.",
    503: "Service unavailable",
}


@dataclass
class Call:
    """One authenticated, admitted API call, handed to an endpoint."""

    sandbox: Sandbox
    request: Request
    token: AccessToken
    user: User
    params: tuple[str, ...]

    @property
    def api(self) -> str:
        return f"{self.request.base_url}/v1"

    def missing_scope(self, *scopes: str) -> Response | None:
        """403 unless the token carries one of ``scopes``."""
        if self.token.scopes.isdisjoint(scopes):
            return api_error(403, "Insufficient client scope")
        return None


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    group: str  # the quota group
    handler: Callable[[Call], Response]

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(re.sub(r"\\\{\w+\\\}", "([^/]+)", re.escape(self.template)) + "$")


# Shapes


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def artist_simplified(artist: Artist, api: str) -> dict[str, Any]:
    return {
        "external_urls": {"spotify": f"https://open.spotify.com/artist/{artist.id}"},
        "href": f"{api}/artists/{artist.id}",
        "id": artist.id,
        "name": artist.name,
        "type": "artist",
        "uri": artist.uri,
    }


def artist_full(artist: Artist, api: str) -> dict[str, Any]:
    """A full artist of 2026: genres (possibly empty) and images, no popularity or followers."""
    images = []
    if artist.has_images:
        key = Draw("image", artist.id).id
        images = [
            {"url": f"https://i.scdn.co/image/{key}{size}", "height": size, "width": size}
            for size in (640, 320, 160)
        ]
    return {**artist_simplified(artist, api), "genres": list(artist.genres), "images": images}


def track_json(track: Track, api: str) -> dict[str, Any]:
    if track.id is None:
        # Local files: no ids, no hrefs, only what the file's tags said.
        return {
            "album": {"album_type": None, "href": None, "id": None, "images": [],
                      "name": track.album_name, "type": "album", "uri": None},
            "artists": [{"external_urls": {}, "href": None, "id": None,
                         "name": track.local_artist, "type": "artist", "uri": None}],
            "duration_ms": track.duration_ms,
            "explicit": False,
            "external_urls": {},
            "href": None,
            "id": None,
            "is_local": True,
            "name": track.name,
            "type": "track",
            "uri": track.uri,
        }  # fmt: skip
    return {
        "album": {
            "album_type": "album",
            "external_urls": {"spotify": f"https://open.spotify.com/album/{track.album_id}"},
            "href": f"{api}/albums/{track.album_id}",
            "id": track.album_id,
            "images": [],
            "name": track.album_name,
            "type": "album",
            "uri": f"spotify:album:{track.album_id}",
        },
        "artists": [artist_simplified(artist, api) for artist in track.artists],
        "disc_number": 1,
        "duration_ms": track.duration_ms,
        "explicit": False,
        "external_urls": {"spotify": f"https://open.spotify.com/track/{track.id}"},
        "href": f"{api}/tracks/{track.id}",
        "id": track.id,
        "is_local": False,
        "name": track.name,
        "track_number": 1,
        "type": "track",
        "uri": track.uri,
    }


def user_ref(user_id: str, display_name: str, api: str) -> dict[str, Any]:
    return {
        "display_name": display_name,
        "external_urls": {"spotify": f"https://open.spotify.com/user/{user_id}"},
        "href": f"{api}/users/{user_id}",
        "id": user_id,
        "type": "user",
        "uri": f"spotify:user:{user_id}",
    }


def playlist_json(playlist: Playlist, api: str, legacy: bool) -> dict[str, Any]:
    """A playlist in its 2026 shape (``items``); ``legacy`` adds the older ``tracks`` too."""
    data: dict[str, Any] = {
        "collaborative": playlist.collaborative,
        "description": playlist.description,
        "external_urls": {"spotify": f"https://open.spotify.com/playlist/{playlist.id}"},
        "href": f"{api}/playlists/{playlist.id}",
        "id": playlist.id,
        "images": [],
        "items": {"href": f"{api}/playlists/{playlist.id}/items", "total": len(playlist.items)},
        "name": playlist.name,
        "owner": user_ref(playlist.owner_id, playlist.owner_name, api),
        "public": playlist.public,
        "snapshot_id": playlist.snapshot_id,
        "type": "playlist",
        "uri": f"spotify:playlist:{playlist.id}",
    }
    if legacy:
        data["tracks"] = {
            "href": f"{api}/playlists/{playlist.id}/tracks",
            "total": len(playlist.items),
        }
    return data


# Paging


def paging_args(request: Request, default: int = DEFAULT_LIMIT) -> tuple[int, int] | Response:
    """(limit, offset) from the query, or Spotify's 400 for values out of range."""
    try:
        limit = int(request.arg("limit", str(default)) or "")
    except ValueError:
        return api_error(400, "Invalid limit")
    if not 1 <= limit <= MAX_PAGE:
        return api_error(400, "Invalid limit")
    try:
        offset = int(request.arg("offset", "0") or "")
    except ValueError:
        return api_error(400, "Invalid offset")
    if offset < 0:
        return api_error(400, "Invalid offset")
    return limit, offset


def page(call: Call, items: list[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    """Spotify's paging object, with absolute ``href``, ``next`` and ``previous`` URLs."""
    keep = [
        (k, v) for k, vs in call.request.query.items() if k not in ("limit", "offset") for v in vs
    ]
    base = f"{call.request.base_url}{call.request.path}"

    def url(at: int) -> str:
        return f"{base}?{urlencode([*keep, ('offset', at), ('limit', limit)])}"

    return {
        "href": url(offset),
        "items": items,
        "limit": limit,
        "next": url(offset + limit) if offset + limit < total else None,
        "offset": offset,
        "previous": url(max(0, offset - limit)) if offset > 0 else None,
        "total": total,
    }


# Endpoints


def me(call: Call) -> Response:
    user = call.user
    data = user_ref(user.id, user.spec.display_name, call.api)
    data["images"] = []
    # account_id depends on the id alone, so it survives spec changes and reseeding.
    data["account_id"] = Draw("account", user.id).id
    if "user-read-email" in call.token.scopes:
        data["email"] = f"{user.id}@sandbox.invalid"
    if "user-read-private" in call.token.scopes:
        data.update(country="SE", product="premium")
    return json_response(200, data)


def saved_tracks(call: Call) -> Response:
    if denied := call.missing_scope("user-library-read"):
        return denied
    args = paging_args(call.request)
    if isinstance(args, Response):
        return args
    limit, offset = args
    library = call.user.library
    items = [
        {"added_at": iso(added_at), "track": None if track is None else track_json(track, call.api)}
        for added_at, track in library.page(offset, limit)
    ]
    return json_response(200, page(call, items, len(library), limit, offset))


def artist(call: Call) -> Response:
    artist_id = call.params[0]
    if not SPOTIFY_ID.fullmatch(artist_id):
        return api_error(400, "Invalid base62 id")
    found = call.sandbox.catalog.find(artist_id)
    if found is None:
        return api_error(404, "Resource not found")
    return json_response(200, artist_full(found, call.api))


def several_artists(call: Call) -> Response:
    if not call.sandbox.options["extended_quota"]:
        return api_error(403, "Forbidden")
    ids = [i for i in (call.request.arg("ids") or "").split(",") if i]
    if not ids:
        return api_error(400, "Missing required parameter: ids")
    if len(ids) > MAX_BATCH_IDS:
        return api_error(400, "Too many ids requested")
    if not all(SPOTIFY_ID.fullmatch(i) for i in ids):
        return api_error(400, "Invalid base62 id")
    artists = [call.sandbox.catalog.find(i) for i in ids]
    return json_response(200, {"artists": [a and artist_full(a, call.api) for a in artists]})


def following(call: Call) -> Response:
    if denied := call.missing_scope("user-follow-read"):
        return denied
    kind = call.request.arg("type")
    if kind is None:
        return api_error(400, "Missing parameter type")
    if kind != "artist":
        return api_error(400, "Invalid type")
    args = paging_args(call.request)
    if isinstance(args, Response):
        return args
    limit, _ = args
    followed = call.user.library.followed()
    after = call.request.arg("after")
    start = bisect_right([a.id for a in followed], after) if after else 0
    chunk = followed[start : start + limit]
    more = start + limit < len(followed)
    last = chunk[-1].id if chunk and more else None
    base = f"{call.api}/me/following"
    href_params = [("type", "artist"), ("limit", limit)] + ([("after", after)] if after else [])
    next_params = [("type", "artist"), ("after", last), ("limit", limit)]
    artists = {
        "cursors": {"after": last},
        "href": f"{base}?{urlencode(href_params)}",
        "items": [artist_full(a, call.api) for a in chunk],
        "limit": limit,
        "next": f"{base}?{urlencode(next_params)}" if last else None,
        "total": len(followed),
    }
    return json_response(200, {"artists": artists})


def top_artists(call: Call) -> Response:
    if denied := call.missing_scope("user-top-read"):
        return denied
    time_range = call.request.arg("time_range", "medium_term")
    if time_range not in TIME_RANGES:
        return api_error(400, "Invalid time range")
    args = paging_args(call.request)
    if isinstance(args, Response):
        return args
    limit, offset = args
    top = call.user.library.top(time_range)
    items = [artist_full(a, call.api) for a in top[offset : offset + limit]]
    return json_response(200, page(call, items, len(top), limit, offset))


def my_playlists(call: Call) -> Response:
    args = paging_args(call.request)
    if isinstance(args, Response):
        return args
    limit, offset = args
    private_ok = "playlist-read-private" in call.token.scopes
    visible = [p for p in call.sandbox.user_playlists(call.user) if p.public or private_ok]
    legacy = call.sandbox.options["legacy_shape"]
    items = [playlist_json(p, call.api, legacy) for p in visible[offset : offset + limit]]
    return json_response(200, page(call, items, len(visible), limit, offset))


def create_playlist(call: Call) -> Response:
    try:
        body = call.request.json()
    except ValueError:
        return api_error(400, "Error parsing JSON.")
    if not isinstance(body, dict):
        return api_error(400, "Error parsing JSON.")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        return api_error(400, "Missing required field: name")
    public = body.get("public", True)
    description = body.get("description") or ""
    if not isinstance(public, bool) or not isinstance(description, str):
        return api_error(400, "Invalid request: public must be boolean, description a string")
    scope = "playlist-modify-public" if public else "playlist-modify-private"
    if denied := call.missing_scope(scope):
        return denied
    playlist = call.sandbox.create_playlist(
        call.user, name, public, bool(body.get("collaborative", False)), description
    )
    legacy = call.sandbox.options["legacy_shape"]
    return json_response(201, playlist_json(playlist, call.api, legacy))


def _playlist(call: Call, *, write: bool) -> Playlist | Response:
    """The playlist of the path, if this user may read (or ``write``) its items."""
    playlist_id = call.params[0]
    if not SPOTIFY_ID.fullmatch(playlist_id):
        return api_error(400, "Invalid base62 id")
    playlist = call.sandbox.playlists.get(playlist_id)
    if playlist is None:
        return api_error(404, "Resource not found")
    member = playlist.owner_id == call.user.id or (
        playlist.collaborative and playlist.id in call.user.playlist_ids
    )
    # Development Mode shows items only to owners and collaborators; Extended Quota to all.
    if not member and (write or not call.sandbox.options["extended_quota"]):
        return api_error(403, "Forbidden")
    if write:
        scope = "playlist-modify-public" if playlist.public else "playlist-modify-private"
        if denied := call.missing_scope(scope):
            return denied
    elif not playlist.public and playlist.owner_id == call.user.id:
        denied = call.missing_scope("playlist-read-private", "playlist-read-collaborative")
        if denied:
            return denied
    return playlist


def playlist_items(call: Call, *, key: str | None = None) -> Response:
    playlist = _playlist(call, write=False)
    if isinstance(playlist, Response):
        return playlist
    args = paging_args(call.request)
    if isinstance(args, Response):
        return args
    limit, offset = args
    key = key or ("track" if call.sandbox.options["legacy_shape"] else "item")
    items = [
        {
            "added_at": iso(item.added_at),
            "added_by": user_ref(item.added_by, item.added_by, call.api),
            "is_local": False,
            key: track_json(item.track, call.api),
        }
        for item in playlist.items[offset : offset + limit]
    ]
    return json_response(200, page(call, items, len(playlist.items), limit, offset))


def add_items(call: Call) -> Response:
    playlist = _playlist(call, write=True)
    if isinstance(playlist, Response):
        return playlist
    try:
        body = call.request.json() or {}
    except ValueError:
        return api_error(400, "Error parsing JSON.")
    if not isinstance(body, dict):
        return api_error(400, "Error parsing JSON.")
    uris = body.get("uris")
    if uris is None and call.request.arg("uris"):
        uris = (call.request.arg("uris") or "").split(",")
    if not isinstance(uris, list) or not uris:
        return api_error(400, "No uris provided")
    if len(uris) > MAX_ADD_URIS:
        return api_error(400, f"You can add a maximum of {MAX_ADD_URIS} tracks per request.")
    position = body.get("position")
    if position is not None and (
        isinstance(position, bool) or not isinstance(position, int) or position < 0
    ):
        return api_error(400, "Invalid position")
    tracks = []
    for uri in uris:
        match = TRACK_URI.fullmatch(uri) if isinstance(uri, str) else None
        if match is None:
            return api_error(400, f"Invalid track uri: {uri}")
        track = call.sandbox.find_track(match.group(1), prefer=call.user)
        if track is None:
            return api_error(400, "Payload contains a non-existing ID")
        tracks.append(track)
    snapshot = call.sandbox.add_items(playlist, tracks, call.user.id, position)
    return json_response(201, {"snapshot_id": snapshot})


def remove_items(call: Call, *, key: str = "items") -> Response:
    """Every occurrence of each URI of ``{"items": [{"uri": ...}]}`` leaves the playlist.

    Like Spotify: a URI that is not in the playlist is no error, and the answer is the
    playlist's snapshot id. ``key`` is ``tracks`` on the pre-2026 route.
    """
    playlist = _playlist(call, write=True)
    if isinstance(playlist, Response):
        return playlist
    try:
        body = call.request.json()
    except ValueError:
        return api_error(400, "Error parsing JSON.")
    if not isinstance(body, dict):
        return api_error(400, "Error parsing JSON.")
    entries = body.get(key)
    if not isinstance(entries, list) or not entries:
        return api_error(400, f"Missing required field: {key}")
    if len(entries) > MAX_REMOVE_URIS:
        return api_error(400, f"You can remove a maximum of {MAX_REMOVE_URIS} tracks per request.")
    snapshot = body.get("snapshot_id")
    if snapshot is not None and not isinstance(snapshot, str):
        return api_error(400, "Invalid snapshot_id")
    gone: set[str] = set()
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("uri"), str):
            return api_error(400, f"Each of {key} must be an object with a uri")
        if "positions" in entry:
            # Removal by position is a Spotify feature Swedify never uses; refuse it loudly
            # rather than remove more than the client meant.
            return api_error(400, "The sandbox does not support positions")
        match = TRACK_URI.fullmatch(entry["uri"])
        if match is None:
            return api_error(400, f"Invalid track uri: {entry['uri']}")
        gone.add(match.group(1))
    # serve() holds the sandbox's lock while an endpoint runs, so this change is atomic.
    kept = [item for item in playlist.items if item.track.id not in gone]
    if len(kept) != len(playlist.items):
        playlist.items = kept
        playlist.version += 1
    return json_response(200, {"snapshot_id": playlist.snapshot_id})


def legacy_create_playlist(call: Call) -> Response:
    if not call.sandbox.options["extended_quota"]:
        return api_error(403, "Forbidden")
    if call.params[0] != call.user.id:
        return api_error(403, "You cannot create a playlist for another user")
    return create_playlist(call)


def legacy_items(call: Call) -> Response:
    if not call.sandbox.options["extended_quota"]:
        return api_error(403, "Forbidden")
    return playlist_items(call, key="track")


def legacy_add(call: Call) -> Response:
    if not call.sandbox.options["extended_quota"]:
        return api_error(403, "Forbidden")
    return add_items(call)


def legacy_remove(call: Call) -> Response:
    if not call.sandbox.options["extended_quota"]:
        return api_error(403, "Forbidden")
    return remove_items(call, key="tracks")


ROUTES = (
    Route("GET", "/v1/me", "profile", me),
    Route("GET", "/v1/me/tracks", "library", saved_tracks),
    Route("GET", "/v1/me/following", "follow", following),
    Route("GET", "/v1/me/top/artists", "top", top_artists),
    Route("GET", "/v1/me/playlists", "playlists", my_playlists),
    Route("POST", "/v1/me/playlists", "playlists", create_playlist),
    Route("GET", "/v1/artists", "artists", several_artists),
    Route("GET", "/v1/artists/{id}", "artists", artist),
    Route("GET", "/v1/playlists/{id}/items", "playlists", playlist_items),
    Route("POST", "/v1/playlists/{id}/items", "playlists", add_items),
    Route("DELETE", "/v1/playlists/{id}/items", "playlists", remove_items),
    # Removed for Development Mode in 2026: they answer 403 unless Extended Quota is on.
    Route("POST", "/v1/users/{id}/playlists", "playlists", legacy_create_playlist),
    Route("GET", "/v1/playlists/{id}/tracks", "playlists", legacy_items),
    Route("POST", "/v1/playlists/{id}/tracks", "playlists", legacy_add),
    Route("DELETE", "/v1/playlists/{id}/tracks", "playlists", legacy_remove),
)
_COMPILED = [(route, route.pattern) for route in ROUTES]


def match(method: str, path: str) -> tuple[Route | None, tuple[str, ...], bool]:
    """(route, path parameters, whether the path exists with another method)."""
    other_method = False
    for route, pattern in _COMPILED:
        found = pattern.match(path)
        if found:
            if route.method == method:
                return route, found.groups(), False
            other_method = True
    return None, (), other_method


def fault_response(fault: ScriptedFault) -> Response:
    headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
    message = ERROR_MESSAGES.get(fault.status, "Injected fault")
    return api_error(fault.status, message, **headers)


def serve(sandbox: Sandbox, request: Request) -> Response:
    """Answer one /v1 request and record it in the stats and the request log."""
    started = time.monotonic()
    route, params, other_method = match(request.method, request.path)
    response, user_id, limited = _pipeline(sandbox, request, route, params, other_method)
    template = (
        route.template if route else ("(method not allowed)" if other_method else "(unknown)")
    )
    entry = LogEntry(
        method=request.method,
        path=request.path + (f"?{request.query_string}" if request.query else ""),
        route=template,
        group=route.group if route else "other",
        status=None if response.drop else response.status,
        user=user_id,
        time=time.time(),
        duration_ms=(time.monotonic() - started) * 1000,
    )
    sandbox.stats.record(entry, api=True, limited=limited)
    return response


def _pipeline(
    sandbox: Sandbox,
    request: Request,
    route: Route | None,
    params: tuple[str, ...],
    other_method: bool,
) -> tuple[Response, str | None, str | None]:
    """(response, user id, "rate" or "quota" when the limiter refused)."""
    faults = sandbox.faults
    method, path = request.method, request.path
    if faults.take(method, path, ("drop",)):
        return Response(0, drop=True), None, None
    # Sleep before taking any lock, so concurrent requests overlap like real network time.
    if delay := faults.latency():
        time.sleep(delay)
    token = authenticate(sandbox, request)
    if isinstance(token, Response):
        return token, None, None
    user_id = token.user_id
    if (wait := faults.admit_rate()) is not None:
        return api_error(429, ERROR_MESSAGES[429], **{"Retry-After": str(wait)}), user_id, "rate"
    group = route.group if route else "other"
    if (wait := faults.admit_quota(group)) is not None:
        response = api_error(
            429, "Quota exceeded", reason="QUOTA_EXCEEDED", **{"Retry-After": str(wait)}
        )
        return response, user_id, "quota"
    if fault := faults.take(method, path, ("status",)):
        return fault_response(fault), user_id, None
    if status := faults.random_error():
        return api_error(status, ERROR_MESSAGES[status]), user_id, None
    with sandbox.lock:
        user = sandbox.users.get(user_id)
        if user is None:
            response = api_error(401, "Invalid access token")
        elif not user.spec.allowlisted:
            response = api_error(403, NOT_REGISTERED)
        elif route is None and other_method:
            response = api_error(405, "Method not allowed")
        elif route is None:
            response = api_error(404, "Service not found")
        else:
            response = route.handler(Call(sandbox, request, token, user, params))
    if 200 <= response.status < 300 and (
        fault := faults.take(method, path, ("write_then_status",))
    ):
        # The change above is applied; the client only learns that something went wrong.
        return fault_response(fault), user_id, None
    return response, user_id, None
