"""The control API under /sandbox/: JSON for tests and benchmarks, plus two HTML pages.

It changes the sandbox's world (users, likes, playlists, tokens, faults) and reads what a
test needs to check a client exactly (playlists with items, the genre truth, stats).
No authentication: the sandbox only listens on 127.0.0.1. That alone does not keep a web
page the developer visits out: a page can send a cross-origin "simple" request (a form, or
``fetch`` with ``text/plain``) to 127.0.0.1, or rebind its own host name to 127.0.0.1 (DNS
rebinding) and read the answers. So the control API answers only requests addressed to a
loopback host name, and its state-changing requests must be JSON, a content type no page can
send cross-origin without the browser asking first (CORS preflight, which the sandbox never
grants).
"""

from __future__ import annotations

import ipaddress
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sandbox import pages
from sandbox.accounts import SCOPES, SWEDIFY_SCOPE, issue_tokens
from sandbox.library import SpecError, Track, genre_truth
from sandbox.web import Request, Response, html_response, json_response, redirect
from sandbox.webapi import iso

if TYPE_CHECKING:
    from sandbox.state import Playlist, Sandbox, User

MAX_NEW_LIKES = 100_000
MAX_NEW_ARTISTS = 10_000


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _body(request: Request) -> Any:
    try:
        return request.json()
    except ValueError as error:
        raise ControlError(400, f"body is not JSON: {error}") from error


def _object(request: Request) -> dict[str, Any]:
    body = _body(request)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ControlError(400, "body must be a JSON object")
    return body


def _user(sandbox: Sandbox, user_id: str) -> User:
    user = sandbox.users.get(user_id)
    if user is None:
        raise ControlError(404, f"no sandbox user {user_id!r}")
    return user


def _int(data: dict[str, Any], name: str, default: int, maximum: int) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise ControlError(400, f"{name} must be an integer from 0 to {maximum}")
    return value


def user_summary(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "display_name": user.spec.display_name,
        "allowlisted": user.spec.allowlisted,
        "tracks": len(user.library),
        "artists": user.spec.artists,
        "playlists": len(user.playlist_ids),
        "spec": user.spec.to_json(),
    }


def _track(track: Track, with_genres: bool = False) -> dict[str, Any]:
    artists = []
    for artist in track.artists:
        data: dict[str, Any] = {"id": artist.id, "name": artist.name}
        if with_genres:
            data["genres"] = list(artist.genres)
        artists.append(data)
    return {"id": track.id, "uri": track.uri, "name": track.name, "artists": artists}


def playlist_summary(playlist: Playlist) -> dict[str, Any]:
    return {
        "id": playlist.id,
        "name": playlist.name,
        "owner": {"id": playlist.owner_id, "display_name": playlist.owner_name},
        "public": playlist.public,
        "collaborative": playlist.collaborative,
        "description": playlist.description,
        "snapshot_id": playlist.snapshot_id,
        "url": f"https://open.spotify.com/playlist/{playlist.id}",
        "total": len(playlist.items),
        "items": [
            {**_track(item.track), "added_at": iso(item.added_at), "added_by": item.added_by}
            for item in playlist.items
        ],
    }


# Handlers: (sandbox, request, path parameters) -> Response


def index(sandbox: Sandbox, request: Request, _: tuple[str, ...]) -> Response:
    return html_response(200, pages.index_page(sandbox, request.base_url))


def list_users(sandbox: Sandbox, request: Request, _: tuple[str, ...]) -> Response:
    return json_response(200, {"users": [user_summary(u) for u in sandbox.users.values()]})


def put_users(sandbox: Sandbox, request: Request, _: tuple[str, ...]) -> Response:
    body = _body(request)
    specs = body if isinstance(body, list) else [body]
    try:
        users = [sandbox.put_user(spec) for spec in specs]
    except SpecError as error:
        raise ControlError(400, str(error)) from error
    return json_response(201, {"users": [user_summary(u) for u in users]})


def user_page(sandbox: Sandbox, request: Request, params: tuple[str, ...]) -> Response:
    return html_response(200, pages.user_page(sandbox, _user(sandbox, params[0])))


def delete_user(sandbox: Sandbox, request: Request, params: tuple[str, ...]) -> Response:
    if not sandbox.remove_user(params[0]):
        raise ControlError(404, f"no sandbox user {params[0]!r}")
    return json_response(200, {"deleted": params[0]})


def add_likes(sandbox: Sandbox, request: Request, params: tuple[str, ...]) -> Response:
    user = _user(sandbox, params[0])
    data = _object(request)
    count = _int(data, "count", 1, MAX_NEW_LIKES)
    new_artists = _int(data, "new_artists", 0, MAX_NEW_ARTISTS)
    if new_artists > count:
        raise ControlError(400, "new_artists cannot exceed count: each new artist gets a like")
    tracks, artists = sandbox.add_likes(user, count, new_artists)
    return json_response(
        201,
        {
            "added": [_track(t, with_genres=True) for t in tracks],
            "new_artists": [
                {"id": a.id, "name": a.name, "genres": list(a.genres)} for a in artists
            ],
            "total": len(user.library),
        },
    )


def remove_likes(sandbox: Sandbox, request: Request, params: tuple[str, ...]) -> Response:
    """The user unlikes tracks they liked after the start (``track_ids``)."""
    user = _user(sandbox, params[0])
    ids = _object(request).get("track_ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ControlError(400, "track_ids must be a list of track ids")
    removed = user.library.remove_likes(ids)
    return json_response(200, {"removed": removed, "total": len(user.library)})


# Likes arriving over time: one background thread per schedule, adding a like every
# `every_seconds` until `count` arrived (or the user was removed or replaced).
MAX_SCHEDULED_LIKES = 10_000
_schedules: dict[str, int] = {}  # user id -> likes still to arrive
_schedules_lock = threading.Lock()


def _deliver_likes(
    sandbox: Sandbox, user: User, count: int, every: float, new_artists: int
) -> None:
    undelivered = count
    try:
        for n in range(count):
            time.sleep(every)
            with sandbox.lock:
                if sandbox.users.get(user.id) is not user:
                    return
                sandbox.add_likes(user, 1, 1 if n < new_artists else 0)
            undelivered -= 1
            with _schedules_lock:
                _schedules[user.id] -= 1
    finally:
        with _schedules_lock:
            left = _schedules.get(user.id, 0) - undelivered
            if left > 0:
                _schedules[user.id] = left
            else:
                _schedules.pop(user.id, None)


def schedule_likes(sandbox: Sandbox, request: Request, params: tuple[str, ...]) -> Response:
    """``{"count": 10, "every_seconds": 0.5, "new_artists": 2}``: likes arrive one at a time,
    a like every ``every_seconds`` (the first after one interval), the first ``new_artists``
    of them by artists new to the catalog."""
    user = _user(sandbox, params[0])
    data = _object(request)
    count = _int(data, "count", 1, MAX_SCHEDULED_LIKES)
    new_artists = _int(data, "new_artists", 0, MAX_NEW_ARTISTS)
    if new_artists > count:
        raise ControlError(400, "new_artists cannot exceed count: each new artist gets a like")
    every = data.get("every_seconds", 1)
    if isinstance(every, bool) or not isinstance(every, int | float) or not 0.01 <= every <= 3600:
        raise ControlError(400, "every_seconds must be a number from 0.01 to 3600")
    with _schedules_lock:
        _schedules[user.id] = _schedules.get(user.id, 0) + count
    threading.Thread(
        target=_deliver_likes,
        args=(sandbox, user, count, float(every), new_artists),
        name=f"sandbox-likes-{user.id}",
        daemon=True,
    ).start()
    return json_response(202, {"scheduled": count, "every_seconds": every})


def scheduled_likes(sandbox: Sandbox, request: Request, params: tuple[str, ...]) -> Response:
    user = _user(sandbox, params[0])
    with _schedules_lock:
        pending = _schedules.get(user.id, 0)
    return json_response(200, {"pending": pending, "total": len(user.library)})


def list_playlists(sandbox: Sandbox, request: Request, params: tuple[str, ...]) -> Response:
    user = _user(sandbox, params[0])
    playlists = sandbox.user_playlists(user)
    return json_response(200, {"playlists": [playlist_summary(p) for p in playlists]})


def add_playlist(sandbox: Sandbox, request: Request, params: tuple[str, ...]) -> Response:
    user = _user(sandbox, params[0])
    try:
        playlist = sandbox.add_playlist_from_spec(user, _object(request))
    except SpecError as error:
        raise ControlError(400, str(error)) from error
    return json_response(201, playlist_summary(playlist))


def delete_playlist(sandbox: Sandbox, request: Request, params: tuple[str, ...]) -> Response:
    user = _user(sandbox, params[0])
    if not sandbox.delete_playlist(user, params[1]):
        raise ControlError(404, f"{params[0]!r} has no playlist {params[1]!r}")
    return json_response(200, {"deleted": params[1]})


def truth(sandbox: Sandbox, request: Request, params: tuple[str, ...]) -> Response:
    """The genres a correct scan of ``sources`` (default: liked songs) must report."""
    user = _user(sandbox, params[0])
    sources = [s for s in (request.arg("sources") or "liked").split(",") if s]
    tracks: list[Track | None] = []
    for source in sources:
        if source == "liked":
            tracks += [track for _, track in user.library.entries()]
        elif source.startswith("playlist:") and source[9:] in user.playlist_ids:
            tracks += [item.track for item in sandbox.playlists[source[9:]].items]
        else:
            raise ControlError(400, f"unknown source {source!r}: use liked or playlist:<id>")
    return json_response(200, {"user": user.id, "sources": sources, **genre_truth(tracks)})


def issue_token(sandbox: Sandbox, request: Request, params: tuple[str, ...]) -> Response:
    """A token pair without the consent dance, for benchmarks that only need API access."""
    user = _user(sandbox, params[0])
    scope = _object(request).get("scope", SWEDIFY_SCOPE)
    if not isinstance(scope, str) or set(scope.split()) - SCOPES:
        raise ControlError(400, "scope must be a space-separated list of Spotify scopes")
    return json_response(201, issue_tokens(sandbox, user.id, " ".join(scope.split())))


def expire_tokens(sandbox: Sandbox, request: Request, params: tuple[str, ...]) -> Response:
    user = _user(sandbox, params[0])
    return json_response(200, {"expired": sandbox.auth.expire_access(user.id)})


def revoke_tokens(sandbox: Sandbox, request: Request, params: tuple[str, ...]) -> Response:
    user = _user(sandbox, params[0])
    return json_response(200, {"revoked": sandbox.auth.revoke_refresh(user.id)})


def get_faults(sandbox: Sandbox, request: Request, _: tuple[str, ...]) -> Response:
    return json_response(200, sandbox.faults.snapshot())


def set_faults(sandbox: Sandbox, request: Request, _: tuple[str, ...]) -> Response:
    try:
        sandbox.faults.configure(_object(request))
    except ValueError as error:
        raise ControlError(400, str(error)) from error
    return json_response(200, sandbox.faults.snapshot())


def clear_faults(sandbox: Sandbox, request: Request, _: tuple[str, ...]) -> Response:
    # Back to the start-time flags, with fresh windows and quota counters.
    sandbox.faults.clear()
    return json_response(200, sandbox.faults.snapshot())


def get_stats(sandbox: Sandbox, request: Request, _: tuple[str, ...]) -> Response:
    return json_response(200, sandbox.stats.snapshot())


def reset_stats(sandbox: Sandbox, request: Request, _: tuple[str, ...]) -> Response:
    sandbox.stats.reset()
    return json_response(200, sandbox.stats.snapshot())


def recent_requests(sandbox: Sandbox, request: Request, _: tuple[str, ...]) -> Response:
    try:
        limit = int(request.arg("limit", "100") or "")
    except ValueError as error:
        raise ControlError(400, "limit must be an integer") from error
    return json_response(200, {"requests": sandbox.stats.recent(max(0, limit))})


def get_config(sandbox: Sandbox, request: Request, _: tuple[str, ...]) -> Response:
    return json_response(200, dict(sandbox.options))


def set_config(sandbox: Sandbox, request: Request, _: tuple[str, ...]) -> Response:
    try:
        return json_response(200, sandbox.configure(_object(request)))
    except ValueError as error:
        raise ControlError(400, str(error)) from error


def reset(sandbox: Sandbox, request: Request, _: tuple[str, ...]) -> Response:
    sandbox.reset()
    return json_response(200, {"reset": True})


Handler = Callable[["Sandbox", Request, tuple[str, ...]], Response]
_USER = r"/sandbox/users/([A-Za-z0-9._-]{1,64})"
ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", r"/sandbox/", index),
    ("GET", r"/sandbox/users", list_users),
    ("POST", r"/sandbox/users", put_users),
    ("GET", _USER, user_page),
    ("DELETE", _USER, delete_user),
    ("POST", _USER + "/likes", add_likes),
    ("DELETE", _USER + "/likes", remove_likes),
    ("GET", _USER + "/likes/schedule", scheduled_likes),
    ("POST", _USER + "/likes/schedule", schedule_likes),
    ("GET", _USER + "/playlists", list_playlists),
    ("POST", _USER + "/playlists", add_playlist),
    ("DELETE", _USER + r"/playlists/([A-Za-z0-9]{1,64})", delete_playlist),
    ("GET", _USER + "/truth", truth),
    ("POST", _USER + "/tokens", issue_token),
    ("POST", _USER + "/tokens/expire", expire_tokens),
    ("POST", _USER + "/tokens/revoke", revoke_tokens),
    ("GET", r"/sandbox/faults", get_faults),
    ("POST", r"/sandbox/faults", set_faults),
    ("DELETE", r"/sandbox/faults", clear_faults),
    ("GET", r"/sandbox/stats", get_stats),
    ("POST", r"/sandbox/stats/reset", reset_stats),
    ("GET", r"/sandbox/requests", recent_requests),
    ("GET", r"/sandbox/config", get_config),
    ("POST", r"/sandbox/config", set_config),
    ("POST", r"/sandbox/reset", reset),
)
_COMPILED = [(method, re.compile(pattern + "/?"), handler) for method, pattern, handler in ROUTES]


LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_loopback_host(host_header: str) -> bool:
    """``Host`` names this machine's loopback: ``localhost``, ``127.x.x.x`` or ``[::1]``,
    with or without a port."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else ""
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host.rstrip(".") in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refusal(request: Request) -> Response | None:
    if not is_loopback_host(request.headers.get("host", "")):
        return json_response(403, {"error": "the control API answers only a loopback Host"})
    if request.method in STATE_CHANGING:
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type != "application/json":
            return json_response(
                415, {"error": "the control API takes only Content-Type: application/json"}
            )
    return None


def serve(sandbox: Sandbox, request: Request) -> Response:
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    if request.path == "/sandbox":
        return redirect("/sandbox/")
    path_found = False
    for method, pattern, handler in _COMPILED:
        found = pattern.fullmatch(request.path)
        if found is None:
            continue
        path_found = True
        if method != request.method:
            continue
        try:
            with sandbox.lock:
                return handler(sandbox, request, found.groups())
        except ControlError as error:
            return json_response(error.status, {"error": error.message})
    if path_found:
        return json_response(405, {"error": f"{request.method} is not allowed here"})
    return json_response(404, {"error": f"no control route {request.path}"})
