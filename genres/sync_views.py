"""JSON API of auto-sync: ``GET|PUT /api/sync`` and ``POST /api/sync/run`` ("Sync now").

The checks and error shapes are the API's own (genres.views.api): 405, 401, the body's
framing, 403 (CSRF), then 400 / 409 for what the client sent; every answer is JSON.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from genres.models import JobOrigin
from genres.sync import (
    SyncConflict,
    SyncInputError,
    sync_json,
    sync_schedule_for,
    sync_start,
    sync_update,
)
from genres.views import ApiResponse, BodyError, api, error, job_starts_limited, json_body

# The fields PUT /api/sync accepts; the others of the sync object are read-only.
WRITABLE = {
    "enabled": "enabled",
    "intervalHours": "interval_hours",
    "removeUnliked": "remove_unliked",
}


def _unknown(body: dict[str, object], allowed: set[str] | dict[str, str]) -> HttpResponse | None:
    unknown = sorted(key for key in body if key not in allowed)
    if not unknown:
        return None
    names = ", ".join(f'"{key}"' for key in unknown[:5])
    accepted = ", ".join(f'"{key}"' for key in allowed) or "no fields"
    return error(400, f"Unknown field(s) {names}: this request accepts {accepted}")


@api("GET", "PUT")
def sync(request: HttpRequest) -> HttpResponse:
    """GET: the listener's auto-sync. PUT: change any of enabled, intervalHours (1-168),
    removeUnliked; answers the same object."""
    if request.method != "PUT":
        return ApiResponse(sync_json(sync_schedule_for(user=request.user)))
    try:
        body = json_body(request)
    except BodyError as problem:
        return error(problem.status, str(problem))
    refused = _unknown(body, WRITABLE)
    if refused is not None:
        return refused
    for field, value in body.items():
        if value is None:
            return error(400, f'"{field}" must not be null')
    try:
        schedule = sync_update(
            user=request.user, **{WRITABLE[field]: value for field, value in body.items()}
        )
    except SyncInputError as problem:
        return error(400, str(problem))
    except SyncConflict as problem:
        return error(409, str(problem))
    return ApiResponse(sync_json(schedule))


@api("POST")
def sync_run(request: HttpRequest) -> HttpResponse:
    """POST /api/sync/run: a sync now, at interactive priority (202 with the sync object, the
    same while one runs)."""
    limited = job_starts_limited(request)
    if limited is not None:
        return limited
    try:
        body = json_body(request)
    except BodyError as problem:
        return error(problem.status, str(problem))
    refused = _unknown(body, set())
    if refused is not None:
        return refused
    schedule, _ = sync_start(user=request.user, origin=JobOrigin.LISTENER)
    if schedule.running_since is None and schedule.stopped_reason:
        return error(409, "Sign in with Spotify again before syncing")
    return ApiResponse(sync_json(schedule), status=202)
