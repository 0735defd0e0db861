"""A listener leaving: "Disconnect Spotify and delete my data".

Everything Swedify holds about a listener hangs off their user row (account and tokens,
scans and results, library rows, playlist jobs, the genre playlists it made), so deleting the
rows is the whole disconnect. Their Spotify playlists are Spotify's and stay. The shared
artist cache and the per-minute call statistics hold nothing personal and stay too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.sessions.models import Session
from django.db import transaction

from genres.models import (
    GenrePlaylist,
    LibrarySource,
    LibraryTrack,
    PlaylistJob,
    Scan,
    ScanResult,
    SpotifyAccount,
    SyncSchedule,
)

# Operators read this logger as the audit trail of listeners leaving; it never names them.
audit_logger = logging.getLogger("swedify.audit")


@dataclass(frozen=True)
class DisconnectSummary:
    rows_deleted: int
    jobs_cancelled: int
    sessions_ended: int


def listener_disconnect(*, user: AbstractBaseUser) -> DisconnectSummary:
    """Deletes the listener's tokens and every row Swedify holds about them, and ends all
    their sessions. Queued and running jobs are cancelled by deleting their rows: a worker
    that holds one loses its claim at its next heartbeat or transition, and the foreign keys
    refuse anything it still tries to write for this listener.

    A plain listener's user row goes too. A staff user who also signed in with Spotify keeps
    their operator account; their sessions are ended one by one instead.
    """
    with transaction.atomic():
        jobs_cancelled = (
            Scan.objects.filter(user=user, status__in=_UNFINISHED_SCANS).count()
            + PlaylistJob.objects.filter(user=user, status__in=_UNFINISHED_JOBS).count()
        )
        rows = 0
        # Children first, so the counts are per table rather than hidden in a cascade.
        for model in (
            # Auto-sync first: a run's tick finds no schedule and stops there.
            SyncSchedule,
            GenrePlaylist,
            PlaylistJob,
            ScanResult,
            Scan,
            LibraryTrack,
            LibrarySource,
            SpotifyAccount,
        ):
            deleted, _ = model.objects.filter(user=user).delete()
            rows += deleted
        sessions = _sessions_of(user)
        Session.objects.filter(session_key__in=sessions).delete()
        if user.is_staff or user.is_superuser:
            rows_user = 0
        else:
            rows_user, _ = get_user_model().objects.filter(pk=user.pk).delete()
        rows += rows_user
    _forget_cached_sessions(sessions)
    audit_logger.info(
        "listener_disconnect: %d rows deleted, %d jobs cancelled, %d sessions ended",
        rows,
        jobs_cancelled,
        len(sessions),
    )
    return DisconnectSummary(rows, jobs_cancelled, len(sessions))


_UNFINISHED_SCANS = (Scan.Status.QUEUED, Scan.Status.RUNNING, Scan.Status.PAUSED)
_UNFINISHED_JOBS = (PlaylistJob.Status.QUEUED, PlaylistJob.Status.RUNNING)


def _sessions_of(user: AbstractBaseUser) -> list[str]:
    """Keys of the user's unexpired sessions. Sessions are signed blobs without an indexed
    owner, so this reads them all; it runs only when someone leaves."""
    from django.utils import timezone

    owner = str(user.pk)
    keys = []
    live = Session.objects.filter(expire_date__gt=timezone.now()).only("session_key")
    for session in live.iterator(chunk_size=500):
        # get_decoded() answers {} for a session it cannot read: nobody's.
        if str(session.get_decoded().get("_auth_user_id", "")) == owner:
            keys.append(session.session_key)
    return keys


def _forget_cached_sessions(keys: list[str]) -> None:
    # cached_db reads the cache before the database: without this, a deleted session would
    # still be honoured until its cache entry expired.
    from django.contrib.sessions.backends.cached_db import SessionStore

    for key in keys:
        SessionStore(session_key=key).delete()
