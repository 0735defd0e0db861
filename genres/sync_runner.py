"""A sync run after its incremental scan: new likes go into the listener's genre playlists.

``sync_advance`` moves a run (genres.sync) one step whenever its driver looks at it: the
run's own task while it polls, or the beat's tick as the backstop. Steps:

1. The run's scan is still going (queued, running, paused by Spotify's quota): wait.
2. The scan failed: the run fails; Spotify refusing the sign-in stops auto-sync.
3. The scan succeeded: the *plan* compares each genre playlist Swedify made for the listener
   with the run's baseline (what the last run left in it). Only tracks of the genre that are
   not in the baseline are new; with none anywhere the run ends without a single playlist
   call. Otherwise one playlist job (``genres.playlist_runner``, the run's origin) fills the
   genres that have new tracks: it reads each playlist and adds only what is missing (never a
   duplicate) to the playlist the genre already has (never a second one).
4. The job ended (or none was needed): with ``removeUnliked``, tracks of the baseline the
   listener no longer likes are taken out of the playlists; the baseline becomes what the
   playlists now hold and the run ends with its result.

Invariant: a genre without a baseline (auto-sync's first run, or a playlist made again) is
filled from the playlist's own items, so a missing baseline costs requests, never duplicates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from genres import spotify
from genres.jobs import job_enqueue
from genres.models import (
    GenrePlaylist,
    JobOrigin,
    PlaylistJob,
    Scan,
    ScanResult,
    SpotifyAccount,
    SyncSchedule,
)
from genres.playlists import (
    DEFAULT_NAME_PATTERN,
    PLAYLIST_JOB_RUN_TASK,
    UNFINISHED,
    genre_track_ids,
)
from genres.ratelimit import PRIORITY_BACKGROUND, PRIORITY_INTERACTIVE
from genres.sync import (
    RUN_STALE,
    SyncResult,
    failed_result,
    sync_finish,
    sync_max_concurrent_runs,
    sync_start,
    sync_stop,
    syncs_background_running,
    syncs_due,
    syncs_running,
)
from genres.tokens import spotify_client_for, token_provider_for

logger = logging.getLogger(__name__)

SYNC_WAITING = "waiting"  # the run's scan or playlist job is still going
SYNC_DONE = "done"  # the run ended (its result is on the schedule)
SYNC_IDLE = "idle"  # no run in progress
SYNC_BUSY = "busy"  # another driver is advancing the run right now

# How long a driver holds a run while advancing it (removals are a few requests).
LEASE = timedelta(minutes=5)
# One remover call per Spotify request, so a resent batch is one request again.
REMOVE_BATCH_SIZE = spotify.REMOVE_ITEMS_LIMIT
# How many of the listener's recent playlist jobs may stand in for a missing baseline.
BASELINE_JOB_LOOKBACK = 20
# Job result statuses after which the playlist held every track of the job's scan's genre.
_FILLED = ("created", "updated", "skipped")
REAUTH_MESSAGE = "Spotify asked you to sign in again; auto-sync is off until you do"


class PlaylistRemover(Protocol):
    """What a run uses to take unliked tracks out of a playlist."""

    def remove_items(self, playlist_id: str, uris: Sequence[str]) -> None: ...


RemoverFactory = Callable[[AbstractBaseUser, str], PlaylistRemover]


class _SpotifyRemover:
    """Removal through the listener's Spotify client (shared budget, retries, token refresh).

    Removing is idempotent (every occurrence of a URI goes, a URI already gone is no error),
    so a removal whose answer was lost is simply sent once more; a second unclear answer
    fails the removal and the tracks stay in the baseline for the next run.
    """

    def __init__(self, client: spotify.SpotifyClient) -> None:
        self.client = client

    def remove_items(self, playlist_id: str, uris: Sequence[str]) -> None:
        try:
            self.client.remove_items(playlist_id, uris)
        except spotify.SpotifyAmbiguousWrite:
            self.client.remove_items(playlist_id, uris)


def default_remover(user: AbstractBaseUser, origin: str) -> PlaylistRemover:
    account = SpotifyAccount.objects.get(user_id=user.pk)
    priority = PRIORITY_INTERACTIVE if origin == JobOrigin.LISTENER else PRIORITY_BACKGROUND
    client = spotify_client_for(account=account, tokens=token_provider_for(user), priority=priority)
    return _SpotifyRemover(client)


# --- The plan --------------------------------------------------------------------------------


@dataclass
class GenrePlan:
    genre: str
    playlist_id: str
    url: str
    targets: list[str]  # the genre's tracks in the run's scan
    known: set[str] | None  # what the playlist already holds, None when unknown
    gone: set[str] = field(default_factory=set)  # baseline tracks no longer liked

    @property
    def additions(self) -> list[str]:
        if self.known is None:
            return list(self.targets)
        return [t for t in self.targets if t not in self.known]


def plan_for(
    *, schedule: SyncSchedule, result: ScanResult, playlists: Iterable[GenrePlaylist]
) -> list[GenrePlan]:
    """Per genre playlist of the listener: the scan's tracks, what is known to be in it and
    what of that the listener no longer likes."""
    payload = result.payload or {}
    tracks = genre_track_ids(payload)
    liked = {track for ids in tracks.values() for track in ids}
    # A truncated result does not list every liked track: nothing is taken as unliked.
    can_tell_unliked = not payload.get("truncated") and not result.truncated
    plans = []
    for row in playlists:
        if not row.playlist_id:
            continue  # a create in doubt: the playlist job's reconcile owns it
        entry = (schedule.baseline or {}).get(row.genre) or {}
        known: set[str] | None = None
        if entry.get("playlistId") == row.playlist_id:
            known = set(entry.get("tracks") or [])
        else:
            known = _known_from_jobs(schedule.user_id, row)
        plan = GenrePlan(
            genre=row.genre,
            playlist_id=row.playlist_id,
            url=row.url,
            targets=list(dict.fromkeys(tracks.get(row.genre, []))),
            known=known,
        )
        if known and can_tell_unliked:
            plan.gone = known - liked
        plans.append(plan)
    return plans


def _known_from_jobs(user_id: int, row: GenrePlaylist) -> set[str] | None:
    """Before auto-sync's first run: the tracks of the latest playlist job that filled this
    playlist (its scan's genre tracks all went in), if that scan's result is still kept."""
    jobs = PlaylistJob.objects.filter(user_id=user_id, status__in=("succeeded", "partial"))
    for job in jobs.order_by("-created_at")[:BASELINE_JOB_LOOKBACK]:
        for entry in job.results or []:
            if (
                entry.get("genre") == row.genre
                and entry.get("playlistId") == row.playlist_id
                and entry.get("status") in _FILLED
                and entry.get("_done")
            ):
                result = ScanResult.objects.filter(scan_id=job.scan_id).first()
                if result is None:
                    return None
                return set(genre_track_ids(result.payload or {}).get(row.genre, []))
    return None


# --- Advancing a run -------------------------------------------------------------------------


def _take_lease(user_id: int, now: datetime) -> SyncSchedule | str:
    # Race: the run's task and the beat's tick may look at the same run at once; one holds it.
    running = SyncSchedule.objects.filter(user_id=user_id, running_since__isnull=False)
    free = Q(advancing_until__isnull=True) | Q(advancing_until__lt=now)
    if not running.filter(free).update(advancing_until=now + LEASE):
        return SYNC_BUSY if running.exists() else SYNC_IDLE
    return SyncSchedule.objects.select_related("scan", "playlist_job", "user").get(user_id=user_id)


def _release(schedule: SyncSchedule) -> None:
    SyncSchedule.objects.filter(pk=schedule.pk).update(advancing_until=None)


def sync_advance(
    *,
    user_id: int,
    now: datetime | None = None,
    remover_factory: RemoverFactory | None = None,
) -> str:
    """Move the listener's run on as far as it can go now. Returns SYNC_WAITING, SYNC_DONE,
    SYNC_BUSY or SYNC_IDLE. Safe to call any number of times, from several processes at once.
    """
    now = now or timezone.now()
    schedule = _take_lease(user_id, now)
    if isinstance(schedule, str):
        return schedule
    try:
        return _Run(schedule, now, remover_factory or default_remover).advance()
    finally:
        _release(schedule)


@dataclass
class _Run:
    schedule: SyncSchedule
    now: datetime
    remover_factory: RemoverFactory

    def advance(self) -> str:
        return _advance(self)

    def fail(self, message: str) -> str:
        sync_finish(user_id=self.schedule.user_id, result=failed_result(message), now=self.now)
        return SYNC_DONE


def _advance(run: _Run) -> str:
    schedule, now = run.schedule, run.now
    stale = schedule.running_since is not None and schedule.running_since < now - RUN_STALE
    job = schedule.playlist_job
    if schedule.playlist_job_id is not None and job is None:
        return run.fail("The run's playlist job was deleted")
    if job is not None:
        if job.status in UNFINISHED and not stale:
            return SYNC_WAITING
        return _complete(run, job)
    scan = schedule.scan
    if scan is None:
        return run.fail("The run's scan was deleted before it ended")
    if scan.status in Scan.ACTIVE:
        if stale:
            return run.fail("The scan did not finish in time; the next run tries again")
        return SYNC_WAITING
    if scan.status != Scan.Status.SUCCEEDED:
        message = (scan.error or {}).get("error") or "The scan failed"
        if _needs_reauth(schedule.user_id):
            sync_stop(user_id=schedule.user_id, reason=SyncSchedule.Stopped.REAUTH)
            message = REAUTH_MESSAGE
        return run.fail(message)
    result = ScanResult.objects.filter(scan_id=scan.pk).first()
    if result is None:
        return run.fail("The scan's result is gone")
    plans = plan_for(
        schedule=schedule,
        result=result,
        playlists=GenrePlaylist.objects.filter(user_id=schedule.user_id).order_by("genre"),
    )
    genres = [plan.genre for plan in plans if plan.additions]
    if not genres:
        return _complete(run, None, plans=plans)
    _start_job(schedule, scan, genres)
    return SYNC_WAITING


def _needs_reauth(user_id: int) -> bool:
    account = SpotifyAccount.objects.filter(user_id=user_id).first()
    return account is None or account.needs_reauth


def _start_job(schedule: SyncSchedule, scan: Scan, genres: list[str]) -> PlaylistJob:
    """One playlist job for the genres with new tracks, at the run's origin."""
    with transaction.atomic():
        job = PlaylistJob.objects.create(
            user_id=schedule.user_id,
            genres=genres,
            name_pattern=DEFAULT_NAME_PATTERN,
            skip_duplicates=True,
            scan=scan,
            origin=schedule.run_origin or JobOrigin.SYNC,
        )
        SyncSchedule.objects.filter(pk=schedule.pk).update(playlist_job=job)
        transaction.on_commit(
            lambda: job_enqueue(task_name=PLAYLIST_JOB_RUN_TASK, job_id=job.pk, label="sync job")
        )
    return job


def _complete(run: _Run, job: PlaylistJob | None, *, plans: list[GenrePlan] | None = None) -> str:
    """The playlist step is over: remove what is unliked (if asked), record, end the run."""
    schedule = run.schedule
    scan = schedule.scan if schedule.scan_id else (job.scan if job else None)
    result = ScanResult.objects.filter(scan_id=scan.pk).first() if scan else None
    if result is None:
        return run.fail("The scan's result is gone")
    if plans is None:
        plans = plan_for(
            schedule=schedule,
            result=result,
            playlists=GenrePlaylist.objects.filter(user_id=schedule.user_id).order_by("genre"),
        )
    entries = {entry.get("genre"): entry for entry in (job.results if job else [])}
    baseline: dict[str, Any] = dict(schedule.baseline or {})
    errors: list[str] = []
    changed: list[dict[str, Any]] = []
    added_total = removed_total = 0
    remover: PlaylistRemover | None = None
    for plan in plans:
        entry = entries.get(plan.genre)
        added = 0
        playlist_id, url = plan.playlist_id, plan.url
        if job is not None and plan.genre in job.genres:
            if entry is None or entry.get("status") == "failed" or not entry.get("_done"):
                reason = (entry or {}).get("error") or "not reached"
                errors.append(f"{plan.genre}: {reason}")
                continue
            added = int(entry.get("tracksAdded") or 0)
            playlist_id = entry.get("playlistId") or playlist_id
            url = entry.get("url") or url
        holds = set(plan.targets)
        removed = 0
        if schedule.remove_unliked and plan.gone and playlist_id == plan.playlist_id:
            try:
                remover = remover or run.remover_factory(schedule.user, schedule.run_origin)
                removed = _remove(remover, playlist_id, sorted(plan.gone))
            except (spotify.InvalidGrant, spotify.SpotifyAuthError):
                sync_stop(user_id=schedule.user_id, reason=SyncSchedule.Stopped.REAUTH)
                errors.append(f"{plan.genre}: {REAUTH_MESSAGE}")
                break
            except Exception as error:
                # The tracks stay in the baseline: the next run tries to remove them again.
                logger.warning("sync for user %s: removal failed", schedule.user_id, exc_info=True)
                errors.append(f"{plan.genre}: could not remove unliked tracks ({error})")
                holds |= plan.gone
        baseline[plan.genre] = {"playlistId": playlist_id, "tracks": sorted(holds)}
        added_total += added
        removed_total += removed
        if added or removed:
            changed.append(
                {
                    "genre": plan.genre,
                    "url": url,
                    "tracksAdded": added,
                    "tracksRemoved": removed,
                }
            )
    if job is not None and job.error and _needs_reauth(schedule.user_id):
        sync_stop(user_id=schedule.user_id, reason=SyncSchedule.Stopped.REAUTH)
        errors.insert(0, REAUTH_MESSAGE)
    outcome = SyncResult(
        status="failed" if errors else "succeeded",
        tracksAdded=added_total,
        tracksRemoved=removed_total,
        playlistsUpdated=len(changed),
        error="; ".join(errors) or None,
        playlists=changed,
    )
    sync_finish(user_id=schedule.user_id, result=outcome, baseline=baseline, now=run.now)
    return SYNC_DONE


def _remove(remover: PlaylistRemover, playlist_id: str, tracks: list[str]) -> int:
    for start in range(0, len(tracks), REMOVE_BATCH_SIZE):
        batch = tracks[start : start + REMOVE_BATCH_SIZE]
        remover.remove_items(playlist_id, [f"spotify:track:{t}" for t in batch])
    return len(tracks)


# --- The beat's tick -------------------------------------------------------------------------


def syncs_start_due(*, now: datetime | None = None) -> int:
    """Start due runs (background priority), oldest ``next_run_at`` first, while fewer than
    ``SYNC_MAX_CONCURRENT_RUNS`` scheduled runs are in progress (genres.sync explains why).
    Called by the beat's tick and by a run's driver when its run ends. Returns how many
    started."""
    now = now or timezone.now()
    room = sync_max_concurrent_runs() - syncs_background_running()
    started = 0
    if room <= 0:
        return 0
    users = get_user_model().objects
    for user_id in syncs_due(now=now):
        if started >= room:
            break
        user = users.filter(pk=user_id).first()
        if user is None:
            continue
        try:
            _, ok = sync_start(user=user, origin=JobOrigin.SYNC, now=now)
        except Exception:  # one listener's failure must not stop the others' runs
            logger.exception("sync for user %s could not start", user_id)
            continue
        started += ok
    return started


def syncs_tick(*, now: datetime | None = None) -> dict[str, int]:
    """Advance the runs in progress, which their own tasks normally do (this is the backstop
    when a task was lost), then start due runs into the free slots."""
    now = now or timezone.now()
    running, _ = syncs_running(now=now)
    ended = 0
    for user_id in running:
        try:
            ended += sync_advance(user_id=user_id, now=now) == SYNC_DONE
        except Exception:
            logger.exception("sync for user %s could not advance", user_id)
    started = syncs_start_due(now=now)
    return {"started": started, "ended": ended, "running": len(running) - ended + started}
