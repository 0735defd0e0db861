"""JSON API of playlist jobs: POST /api/playlists, GET /api/playlist-jobs/<id>.

The checks and error shapes are the API's own (genres.views.api): 405, 401, 403 (CSRF), then
400 / 404 for what the client sent; every answer is JSON.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.http import HttpRequest, HttpResponse

from genres.models import PlaylistJob
from genres.playlists import PlaylistInputError, playlist_job_json, playlist_job_start
from genres.views import ApiResponse, _json_body, api, error


@api("POST")
def playlists(request: HttpRequest, account: Any) -> HttpResponse:
    """POST /api/playlists: queue a playlist job (202 with the job)."""
    try:
        body = _json_body(request)
    except ValueError as problem:
        return error(400, str(problem))
    try:
        job = playlist_job_start(
            user=request.user,
            genres=body.get("genres"),
            name_pattern=body.get("namePattern"),
            description=body.get("description"),
            skip_duplicates=body.get("skipDuplicates"),
        )
    except PlaylistInputError as problem:
        return error(400, problem.message)
    return ApiResponse(playlist_job_json(job), status=202)


@api("GET")
def playlist_job(request: HttpRequest, account: Any, job_id: str) -> HttpResponse:
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
