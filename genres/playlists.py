"""Playlist jobs: one listener's request to turn genres of a scan into Spotify playlists.

``playlist_job_request`` (the API) and ``playlist_job_start`` validate the request and record
a queued job; a Celery task runs it (genres.playlist_runner), genre by genre, persisting each
genre's result as soon as it changes. Recovery re-queues a job whose worker died.

"Unclassified" is a valid genre target when the scan found tracks without a genre (and no real
genre of that name exists): it makes a playlist of those tracks.

Results: ``tracksTotal`` is the genre's track count in the scan (what the playlist should hold),
``tracksAdded`` what this job really added. Entries also carry bookkeeping for a resumed run
(keys starting with ``_``), which ``playlist_job_json`` leaves out.
"""

from __future__ import annotations

import logging
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from genres.jobs import job_enqueue, yield_claim, yield_token_new
from genres.models import PlaylistJob, ScanResult
from genres.selectors import iso, latest_result

logger = logging.getLogger(__name__)

MAX_GENRES = 50
# A listener's playlist jobs in these states block a new one (playlist_job_request).
UNFINISHED = (PlaylistJob.Status.QUEUED, PlaylistJob.Status.RUNNING)
# Spotify refuses playlist names longer than 100 characters.
MAX_NAME_LENGTH = 100
# A pattern must leave each {genre} this many characters; longer genres are shortened.
MIN_GENRE_ROOM = 20
MAX_DESCRIPTION_LENGTH = 300
MAX_PATTERN_LENGTH = 200
# Marked for translation only: the genres page suggests it in the page's language, while the
# API and auto-sync keep this English default (the contract's).
DEFAULT_NAME_PATTERN = gettext_noop("{genre} (from Likes)")
GENRE_PLACEHOLDER = "{genre}"
UNCLASSIFIED = "Unclassified"
# The Celery task that runs a playlist job (genres.tasks), queued by name.
PLAYLIST_JOB_RUN_TASK = "genres.tasks.playlist_job_run_task"
# How long a job waiting for another job of the same listener waits before trying again.
BUSY_RETRY_SECONDS = 15
# A delayed message is sent this much after the row is due, so it never arrives just before.
DUE_MARGIN_SECONDS = 0.5

PUBLIC_RESULT_KEYS = (
    "genre",
    "status",
    "playlistId",
    "url",
    "tracksAdded",
    "tracksTotal",
    "error",
    "reason",
)


class GenreResult(TypedDict, total=False):
    """One genre's entry of a job's ``results``: the contract's fields, and bookkeeping for a
    resumed run (keys starting with ``_``, left out of the JSON)."""

    genre: str
    status: str  # "created", "updated", "skipped" or "failed"
    playlistId: str | None
    url: str | None
    tracksAdded: int
    tracksTotal: int
    error: str | None
    reason: str  # why a genre was skipped
    _done: bool  # nothing left to do for this genre
    _before: int  # target tracks the playlist held before this job touched it
    _preexisting: list[str]  # same-name playlists seen before our create


class PlaylistInputError(ValueError):
    """A playlist request that cannot be run; ``message`` says what is wrong (HTTP 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- Starting a job -------------------------------------------------------------------------


def _has_control_characters(text: str) -> bool:
    return any(unicodedata.category(ch) in {"Cc", "Zl", "Zp"} for ch in text)


def _quoted(names: Iterable[str], limit: int = 10) -> str:
    names = list(names)
    shown = ", ".join(repr(name) for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _genre_room(pattern: str) -> int:
    """How many characters each {genre} may take for the name to fit Spotify's limit."""
    fixed = len(pattern.strip()) - len(GENRE_PLACEHOLDER) * pattern.count(GENRE_PLACEHOLDER)
    return (MAX_NAME_LENGTH - fixed) // max(1, pattern.count(GENRE_PLACEHOLDER))


def playlist_name(pattern: str, genre: str) -> str:
    """The playlist name for a genre: ``pattern`` with every {genre} replaced, at most
    MAX_NAME_LENGTH characters (a genre too long to fit is shortened with an ellipsis, so the
    same request always gives the same name)."""
    room = _genre_room(pattern)
    if len(genre) > room:
        genre = genre[: max(1, room - 1)].rstrip() + "\u2026"
    # str.replace, not str.format: genre names and patterns may hold any braces.
    return pattern.strip().replace(GENRE_PLACEHOLDER, genre)


def genre_track_ids(payload: dict[str, Any]) -> dict[str, list[str]]:
    """Genre name -> track ids of a scan result payload, with "Unclassified" when it has
    tracks (a real genre of that name wins)."""
    tracks: dict[str, list[str]] = {}
    unclassified = payload.get("unclassified") or {}
    if unclassified.get("trackIds"):
        tracks[UNCLASSIFIED] = list(unclassified["trackIds"])
    for entry in payload.get("genres") or []:
        tracks[entry["name"]] = list(entry.get("trackIds") or [])
    return tracks


@dataclass(frozen=True)
class PlaylistRequest:
    """A validated playlist request: what a job is created from."""

    genres: list[str]
    name_pattern: str
    description: str
    skip_duplicates: bool
    result: ScanResult


def playlist_request_validate(
    *,
    user: AbstractBaseUser,
    genres: object,
    name_pattern: object = DEFAULT_NAME_PATTERN,
    description: object = "",
    skip_duplicates: object = True,
) -> PlaylistRequest:
    """Checks a playlist request against the listener's latest scan; raises
    PlaylistInputError for anything the client must change."""
    if name_pattern is None:
        name_pattern = DEFAULT_NAME_PATTERN
    if description is None:
        description = ""
    if skip_duplicates is None:
        skip_duplicates = True
    if not isinstance(genres, list) or not all(isinstance(g, str) for g in genres):
        raise PlaylistInputError("genres must be a list of genre names")
    genres = list(dict.fromkeys(genres))  # the same genre twice is one playlist
    if not genres:
        raise PlaylistInputError("genres must name at least one genre")
    if len(genres) > MAX_GENRES:
        raise PlaylistInputError(f"at most {MAX_GENRES} genres per request, not {len(genres)}")
    if not isinstance(name_pattern, str):
        raise PlaylistInputError("namePattern must be a string")
    if GENRE_PLACEHOLDER not in name_pattern:
        raise PlaylistInputError("namePattern must contain {genre}")
    if len(name_pattern) > MAX_PATTERN_LENGTH:
        raise PlaylistInputError(f"namePattern must be at most {MAX_PATTERN_LENGTH} characters")
    if _has_control_characters(name_pattern):
        raise PlaylistInputError("namePattern must not contain control characters")
    if _genre_room(name_pattern) < MIN_GENRE_ROOM:
        raise PlaylistInputError(
            f"namePattern leaves too little room for the genre within Spotify's limit of "
            f"{MAX_NAME_LENGTH} characters for a playlist name"
        )
    if not isinstance(description, str):
        raise PlaylistInputError("description must be a string")
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise PlaylistInputError(f"description must be at most {MAX_DESCRIPTION_LENGTH} characters")
    if _has_control_characters(description):
        raise PlaylistInputError("description must not contain control characters")
    if not isinstance(skip_duplicates, bool):
        raise PlaylistInputError("skipDuplicates must be true or false")

    result = latest_result(user=user, with_payload=True)
    if result is None:
        raise PlaylistInputError("No scan yet: scan your library before creating playlists")
    known = genre_track_ids(result.payload)
    unknown = [genre for genre in genres if genre not in known]
    if unknown:
        raise PlaylistInputError(f"unknown genres (not in your latest scan): {_quoted(unknown)}")
    names = {genre: playlist_name(name_pattern, genre) for genre in genres}
    blank = [genre for genre, name in names.items() if not name.strip()]
    if blank:
        raise PlaylistInputError(f"the playlist name would be blank for {_quoted(blank)}")
    unprintable = [genre for genre, name in names.items() if _has_control_characters(name)]
    if unprintable:
        raise PlaylistInputError(
            f"the playlist name would contain control characters for {_quoted(unprintable)}"
        )

    return PlaylistRequest(genres, name_pattern, description, skip_duplicates, result)


def playlist_job_start(*, user: AbstractBaseUser, **request: object) -> PlaylistJob:
    """Validate a playlist request against the listener's latest scan and queue a job.

    Raises PlaylistInputError for anything the client must change. The job is handed to a
    worker once the surrounding transaction commits.
    """
    return _create(user, playlist_request_validate(user=user, **request))


def playlist_job_request(*, user: AbstractBaseUser, **request: object) -> tuple[PlaylistJob, bool]:
    """What the API does with a listener's request: at most one queued or running playlist
    job per listener. Returns ``(job, True)`` for a new job, or ``(the unfinished job, False)``
    when one is queued or running (the new request is validated all the same, and not
    merged: the listener sends it again once that job ends, and it adds only what is missing).
    """
    valid = playlist_request_validate(user=user, **request)
    with transaction.atomic():
        # Race: two requests at once would both find no unfinished job; the listener's row
        # lock (SQLite: the write lock) makes check-and-create one step.
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        unfinished = (
            PlaylistJob.objects.filter(user=user, status__in=UNFINISHED)
            .order_by("created_at")
            .first()
        )
        if unfinished is not None:
            return unfinished, False
        return _create(user, valid), True


def _create(user: AbstractBaseUser, valid: PlaylistRequest) -> PlaylistJob:
    job = PlaylistJob.objects.create(
        user=user,
        genres=valid.genres,
        name_pattern=valid.name_pattern,
        description=valid.description,
        skip_duplicates=valid.skip_duplicates,
        scan=valid.result.scan,
    )
    transaction.on_commit(lambda: _enqueue(job.pk))
    return job


def _enqueue(job_id: uuid.UUID | str, *, token: str = "", countdown: float | None = None) -> None:
    # A broker that refuses leaves the job row as it is: recovery re-queues it.
    job_enqueue(
        task_name=PLAYLIST_JOB_RUN_TASK,
        job_id=job_id,
        label="playlist job",
        token=token,
        countdown=countdown,
    )


def playlist_job_yield(*, job_id: uuid.UUID | str, worker: str, delay: float = 0.0) -> bool:
    """Hand a running job's worker back (genres.jobs): the job stays ``running`` for the
    listener, no worker holds it, and its task is queued again, at the back of the queue,
    with a new token (after ``delay`` seconds when it waits for the Spotify budget)."""
    token = yield_token_new()
    due = timezone.now() + timedelta(seconds=max(0.0, delay))
    # Race: only the worker that holds the claim may hand it back.
    handed_back = PlaylistJob.objects.owned_by(pk=job_id, worker=worker).update(
        claimed_by=yield_claim(token), heartbeat_at=due
    )
    if handed_back:
        countdown = delay + DUE_MARGIN_SECONDS if delay > 0 else None
        transaction.on_commit(lambda: _enqueue(job_id, token=token, countdown=countdown))
    return bool(handed_back)


# --- JSON -----------------------------------------------------------------------------------


def playlist_job_json(job: PlaylistJob) -> dict[str, Any]:
    """The contract's playlist job object (plus additive fields: genres, error, times)."""
    results = []
    for entry in job.results:
        public = {key: entry.get(key) for key in PUBLIC_RESULT_KEYS if key != "reason"}
        if entry.get("reason"):
            public["reason"] = entry["reason"]
        results.append(public)
    return {
        "id": str(job.pk),
        "status": job.status,
        "genres": list(job.genres),
        "results": results,
        "error": job.error,
        "createdAt": iso(job.created_at),
        "startedAt": iso(job.started_at),
        "finishedAt": iso(job.finished_at),
    }


# --- Recovery -------------------------------------------------------------------------------


def playlist_jobs_due_for_recovery(*, now: datetime | None = None) -> list[str]:
    """Playlist jobs a worker should (re)run: running with a dead worker, or queued so long
    that their task message was lost (or they waited for another job of the listener)."""
    due = PlaylistJob.objects.due_for_recovery(now=now)
    return [str(pk) for pk in due.values_list("pk", flat=True)]
