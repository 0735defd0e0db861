"""JSON API of playlist jobs: POST /api/playlists, GET /api/playlist-jobs/<id>.

The checks and error shapes are the API's own (genres.views.api): 405, 401, the body's
framing, 403 (CSRF), then 400 / 404 for what the client sent; every answer is JSON.
"""

from __future__ import annotations

import re
import uuid

from django.http import HttpRequest, HttpResponse

from genres.models import PlaylistJob
from genres.playlists import PlaylistInputError, playlist_job_json, playlist_job_request
from genres.views import ApiResponse, BodyError, api, error, job_starts_limited, json_body

# Embeddings, overrides and isolates (U+202A to U+202E, U+2066 to U+2069) reorder the text around
# them: in a playlist name they can make Spotify and every client show a name other than the
# one stored ("Trojan Source" spoofing). Names and descriptions never need them.
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
# The listener's own text that ends up in playlists Swedify creates.
_TEXT_FIELDS = ("namePattern", "description")


@api("POST")
def playlists(request: HttpRequest) -> HttpResponse:
    """POST /api/playlists: queue a playlist job (202 with the job), or 200 with the
    listener's queued or running job (one at a time, genres.playlists.playlist_job_request)."""
    limited = job_starts_limited(request)
    if limited is not None:
        return limited
    try:
        body = json_body(request)
    except BodyError as problem:
        return error(problem.status, str(problem))
    for field in _TEXT_FIELDS:
        value = body.get(field)
        if isinstance(value, str) and BIDI_CONTROLS.search(value):
            return error(400, f"{field} must not contain bidirectional override characters")
    try:
        job, created = playlist_job_request(
            user=request.user,
            genres=body.get("genres"),
            name_pattern=body.get("namePattern"),
            description=body.get("description"),
            skip_duplicates=body.get("skipDuplicates"),
        )
    except PlaylistInputError as problem:
        return error(400, problem.message)
    return ApiResponse(playlist_job_json(job), status=202 if created else 200)


@api("GET")
def playlist_job(request: HttpRequest, job_id: str) -> HttpResponse:
    """GET /api/playlist-jobs/<id>: the job, only to the listener who started it.

    Another listener's job and a malformed id answer the same 404 as an unknown one.
    """
    try:
        key = uuid.UUID(job_id)
    except ValueError:
        return error(404, "Playlist job not found")
    job = PlaylistJob.objects.filter(pk=key, user_id=request.user.pk).first()
    if job is None:
        return error(404, "Playlist job not found")
    return ApiResponse(playlist_job_json(job))
