"""The playlist job runner: ``playlist_job_run`` claims a job with compare-and-set
(genres.jobs) and works through its genres in order, persisting each genre's result as soon as
it changes.

Invariants the runner keeps (Spotify's POSTs are not idempotent and a 5xx on a write may have
been applied, so these are what "never twice" rests on):

- Swedify makes at most one playlist per listener and genre (``GenrePlaylist``). Before the
  create request is sent the row is written with ``pending_since``; a row found later with
  ``pending_since`` and no ``playlist_id`` is *reconciled*: the listener's own playlists are
  searched for the intended name (excluding same-name playlists seen before the create) and a
  match is adopted instead of creating again.
- Tracks are only ever added after reading what the playlist holds, and after an ambiguous add
  the playlist is read again: a track is never added twice.
- Only one playlist job per listener runs at a time, so two jobs never fill one playlist at
  once (a second job waits, ``queued``, until the first finishes or its worker is presumed
  dead).
- A playlist the listener deleted in Spotify (it is gone from their playlists: Spotify keeps
  it for its owner, invisible) is not filled again: the genre gets a new playlist, through
  the same pending-create steps as a first one.

A job runs in slices (genres.jobs): between genres, when its slice is used up and other work
waits for a worker, it yields its worker and is queued again; a genre is never cut in two. A
wait for the shared Spotify budget longer than the client's short ``limiter_timeout``, or a
short rate-limit wait Spotify asks for, yields the same way, for that wait, and the genre in
progress goes on in the next slice (it reads what the playlist holds first, so nothing is
added twice).

A quota or long rate-limit pause from Spotify stops the job: the genre in progress and the ones
not reached are ``failed`` with the time to retry (``error.retryAt`` on the job). Re-sending the
same request later resumes exactly where it stopped, because a run only adds what is missing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NotRequired, Protocol, TypedDict

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from genres import spotify
from genres.call_stats import SpotifyCallRecorder
from genres.jobs import (
    BUDGET_RECHECK_MAX,
    JOB_LIMITER_TIMEOUT,
    ORIGIN_SYNC,
    RUN_BUSY,
    RUN_FINISHED,
    RUN_NOT_CLAIMED,
    RUN_YIELDED,
    JobClaimLost,
    JobSlice,
    SliceEnd,
    default_worker_id,
    is_uuid,
    job_heartbeat,
)
from genres.models import GenrePlaylist, PlaylistJob, ScanResult, SpotifyAccount
from genres.playlists import GenreResult, genre_track_ids, playlist_job_yield, playlist_name
from genres.ratelimit import PRIORITY_BACKGROUND, PRIORITY_INTERACTIVE
from genres.selectors import iso
from genres.tokens import spotify_client_for, token_provider_for

logger = logging.getLogger(__name__)

# POST /playlists/{id}/items takes at most 100 URIs.
ADD_BATCH_SIZE = 100
# Ambiguous adds on one genre before it is given up (the next run reconciles).
MAX_AMBIGUOUS_WRITES = 3
# How many of the listener's recent jobs are searched for what a crashed create had seen.
RECONCILE_JOB_LOOKBACK = 20
# A playlist made this recently counts as the listener's even if their playlists do not list
# it yet (listings may lag behind a create): only an older one missing there was deleted.
DELETED_AFTER = timedelta(minutes=10)


# The limiter's reason on SpotifyRateLimited when the shared budget had no slot in time.
LIMITER_TIMEOUT_REASON = "LIMITER_TIMEOUT"
# A wait for the shared budget, or for Spotify's rate limit, up to this long yields the
# worker; a longer one (or a quota) stops the job and says when to retry.
BUDGET_YIELD_MAX = 120.0


class _BudgetWait(Exception):
    """The shared budget has no slot for this job for ``wait`` seconds: yield that long."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"waiting {wait:.1f} s for the Spotify budget")
        self.wait = wait


# A playlist object as Spotify answers it (genres.spotify hands over its JSON as is).
SpotifyPlaylist = dict[str, Any]


class JobError(TypedDict):
    """A job's ``error`` when it stopped as a whole."""

    error: str
    details: NotRequired[str]
    retryAt: NotRequired[str | None]


class PlaylistClient(Protocol):
    """What the runner uses of ``spotify.SpotifyClient``."""

    def my_playlists(self) -> Iterable[SpotifyPlaylist]: ...

    def create_playlist(
        self, *, name: str, description: str = "", public: bool = False
    ) -> SpotifyPlaylist: ...

    def playlist_track_ids(self, playlist_id: str) -> list[str]: ...

    def add_items(self, playlist_id: str, uris: Sequence[str]) -> str: ...


# Makes the client a job acts through, for the job's listener.
ClientFactory = Callable[[AbstractBaseUser], PlaylistClient]


def default_client_factory(
    user: AbstractBaseUser,
    *,
    on_call: Callable[[spotify.CallRecord], None] | None = None,
    priority: str = PRIORITY_INTERACTIVE,
) -> spotify.SpotifyClient:
    """A client acting as the listener through the shared rate limiter, with the listener's
    database-backed tokens (genres.tokens.token_provider_for); it waits for the budget at most
    JOB_LIMITER_TIMEOUT seconds (a longer wait yields the job's worker)."""
    account = SpotifyAccount.objects.get(user_id=user.pk)
    return spotify_client_for(
        account=account,
        on_call=on_call,
        tokens=token_provider_for(user),
        priority=priority,
        limiter_timeout=JOB_LIMITER_TIMEOUT,
    )


def _claim(job_id: object, token: str, yield_token: str = "") -> str:
    """Take the job for this worker, or say why not (``yield_token``: the job yielded)."""
    if not is_uuid(job_id):
        return RUN_NOT_CLAIMED
    job_id = uuid.UUID(str(job_id))
    user_id = PlaylistJob.objects.filter(pk=job_id).values_list("user_id", flat=True).first()
    if user_id is None:
        return RUN_NOT_CLAIMED
    now = timezone.now()
    with transaction.atomic():
        # Race: two jobs of one listener claimed at once would fill the same playlists; the
        # listener's row lock (SQLite: the write lock) makes check-and-claim one step.
        get_user_model().objects.select_for_update().filter(pk=user_id).first()
        other_running = (
            PlaylistJob.objects.alive(now=now).filter(user_id=user_id).exclude(pk=job_id).exists()
        )
        claimable = PlaylistJob.objects.claimable(now=now, token=yield_token).filter(pk=job_id)
        if other_running:
            return RUN_BUSY if claimable.exists() else RUN_NOT_CLAIMED
        # Race: a redelivered task and a recovery re-queue may both try; one row changes.
        claimed = claimable.update(
            status=PlaylistJob.Status.RUNNING,
            claimed_by=token,
            heartbeat_at=now,
            started_at=Coalesce(F("started_at"), now),
            # Taking back a yielded job is its next slice, not another attempt.
            attempts=F("attempts") + (0 if yield_token else 1),
        )
    return RUN_FINISHED if claimed else RUN_NOT_CLAIMED


def playlist_job_run(
    *,
    job_id: object,
    client_factory: ClientFactory | None = None,
    worker: str = "",
    token: str = "",
) -> str:
    """Run (or resume) one slice of a playlist job. Returns RUN_FINISHED, RUN_YIELDED (it
    handed its worker back and is queued again), RUN_BUSY or RUN_NOT_CLAIMED.

    Safe to call any number of times, concurrently too: only one caller claims the job, and a
    job whose worker died (heartbeat stale) is resumed without duplicate playlists or tracks.
    ``token`` takes back a job that yielded (genres.jobs).
    """
    holder = worker or default_worker_id()
    outcome = _claim(job_id, holder, token)
    if outcome != RUN_FINISHED:
        return outcome
    job = PlaylistJob.objects.select_related("user", "scan").get(pk=uuid.UUID(str(job_id)))
    background = job.origin == ORIGIN_SYNC
    recorder = None
    if client_factory is None:
        # Calls are counted for the operators' rate-limit page, like a scan's.
        recorder = SpotifyCallRecorder()
        record = recorder.record
        priority = PRIORITY_BACKGROUND if background else PRIORITY_INTERACTIVE

        def client_factory(user: AbstractBaseUser) -> spotify.SpotifyClient:
            return default_client_factory(user, on_call=record, priority=priority)

    run_slice = JobSlice(user_id=job.user_id, background=background)
    try:
        # Race: beats only while the claim is ours; a lost claim shows at the next persist.
        claimed = PlaylistJob.objects.owned_by(pk=job.pk, worker=holder)
        with job_heartbeat(claimed=claimed, label=f"playlist job {job.pk}"):
            _JobRun(job, holder, client_factory, run_slice).execute()
    except SliceEnd:
        playlist_job_yield(job_id=job.pk, worker=holder, delay=run_slice.delay or 0.0)
        return RUN_YIELDED
    except _BudgetWait as wait:
        playlist_job_yield(job_id=job.pk, worker=holder, delay=wait.wait)
        return RUN_YIELDED
    except JobClaimLost:
        logger.warning("playlist job %s was taken over by another worker", job_id)
    finally:
        if recorder is not None:
            recorder.flush()
    return RUN_FINISHED


@dataclass(frozen=True)
class _Stop:
    """Why the whole job stops (quota, sign-in): every genre not done fails with this."""

    message: str
    error: JobError


class _GenreFailed(Exception):
    """This genre cannot go on now (the message says why); the job goes on with the next."""


def _budget_wait(error: spotify.SpotifyRateLimited) -> float | None:
    """Seconds to wait before the job can go on, when that is short enough to yield for: the
    shared budget had no slot in time, or Spotify's rate limit (not a quota) asked for a wait
    too long to sit through in a worker. None: stop the job (a quota, a long wait)."""
    wait = max(0.0, float(error.retry_after or 0.0))
    if getattr(error, "reason", None) == LIMITER_TIMEOUT_REASON:
        return wait
    if not getattr(error, "quota", False) and wait <= BUDGET_YIELD_MAX:
        return wait
    return None


def _normalised(name: str) -> str:
    return " ".join(name.split()).casefold()


def _url(playlist: SpotifyPlaylist) -> str:
    url = (playlist.get("external_urls") or {}).get("spotify")
    return url or f"https://open.spotify.com/playlist/{playlist['id']}"


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return text or error.__class__.__name__


class _JobRun:
    def __init__(
        self,
        job: PlaylistJob,
        token: str,
        client_factory: ClientFactory,
        run_slice: JobSlice | None = None,
    ) -> None:
        self.job = job
        self.token = token
        self.client_factory = client_factory
        self.slice = run_slice
        self.client: PlaylistClient  # made by execute(), once the job is ours
        self.owner_id = ""
        self.entries: dict[str, GenreResult] = {
            entry["genre"]: GenreResult(**entry) for entry in job.results
        }
        self._playlists: list[SpotifyPlaylist] | None = None

    # -- bookkeeping ---------------------------------------------------------------------

    def persist(self) -> None:
        """Write the results (in request order) and a heartbeat; stop if the job is not ours."""
        self.job.results = [self.entries[g] for g in self.job.genres if g in self.entries]
        now = timezone.now()
        # Race: a worker that looked dead may still be running; only the holder writes.
        changed = PlaylistJob.objects.owned_by(pk=self.job.pk, worker=self.token).update(
            results=self.job.results, heartbeat_at=now
        )
        if not changed:
            raise JobClaimLost(str(self.job.pk))

    def finish(self, error: JobError | None = None) -> None:
        self.job.results = [self.entries[g] for g in self.job.genres if g in self.entries]
        statuses = [entry["status"] for entry in self.job.results]
        if statuses and all(status == "failed" for status in statuses):
            final = PlaylistJob.Status.FAILED
        elif "failed" in statuses:
            final = PlaylistJob.Status.PARTIAL
        else:
            final = PlaylistJob.Status.SUCCEEDED
        # Race: as in persist(), only the worker holding the claim may finish the job.
        changed = PlaylistJob.objects.owned_by(pk=self.job.pk, worker=self.token).update(
            results=self.job.results,
            status=final,
            error=error,
            finished_at=timezone.now(),
            heartbeat_at=timezone.now(),
        )
        if not changed:
            raise JobClaimLost(str(self.job.pk))

    def entry(self, genre: str, total: int) -> GenreResult:
        entry = self.entries.get(genre)
        if entry is None:
            entry = GenreResult(
                genre=genre,
                status="updated",
                playlistId=None,
                url=None,
                tracksAdded=0,
                tracksTotal=total,
                error=None,
                _done=False,
            )
            self.entries[genre] = entry
        entry["tracksTotal"] = total
        return entry

    def fail(self, genre: str, total: int, message: str) -> None:
        entry = self.entry(genre, total)
        entry.update(status="failed", error=message, _done=True)
        entry.pop("reason", None)
        self.persist()

    # -- the job -------------------------------------------------------------------------

    def execute(self) -> None:
        result = ScanResult.objects.filter(scan_id=self.job.scan_id).first()
        if self.job.scan_id is None or result is None:
            for genre in self.job.genres:
                if not self.entries.get(genre, {}).get("_done"):
                    self.fail(genre, 0, "the scan this job was based on no longer exists")
            self.finish({"error": "The scan this job was based on no longer exists"})
            return
        tracks = genre_track_ids(result.payload)
        stop: _Stop | None = None
        try:
            self.owner_id = SpotifyAccount.objects.get(user=self.job.user).spotify_id
            self.client = self.client_factory(self.job.user)
        except SpotifyAccount.DoesNotExist:
            stop = _Stop(
                "no Spotify account is linked: sign in again",
                {"error": "No Spotify account is linked"},
            )
        except Exception as error:
            # Failing the job beats crashing: a crash would be retried by recovery forever.
            logger.exception("playlist job %s could not prepare its Spotify client", self.job.pk)
            stop = _Stop(
                f"could not connect to Spotify: {_describe(error)}",
                {"error": "Could not connect to Spotify", "details": _describe(error)},
            )
        started = False
        for genre in self.job.genres:
            targets = list(dict.fromkeys(tracks.get(genre, [])))
            if self.entries.get(genre, {}).get("_done"):
                continue
            if stop is not None:
                self.fail(genre, len(targets), f"not attempted: {stop.message}")
                continue
            # Between genres only (a genre is never cut in two), and never before the first.
            if started and self.slice is not None and self.slice.over():
                raise SliceEnd(str(self.job.pk))
            started = True
            try:
                self.run_genre(genre, targets)
            except _GenreFailed as error:
                self.fail(genre, len(targets), str(error))
            except JobClaimLost:
                raise
            except spotify.SpotifyRateLimited as error:
                wait = _budget_wait(error)
                if wait is not None and wait <= BUDGET_YIELD_MAX:
                    if getattr(error, "reason", None) == LIMITER_TIMEOUT_REASON:
                        wait = min(wait, BUDGET_RECHECK_MAX)
                    raise _BudgetWait(wait) from error
                stop = self.quota_stop(error)
                self.fail(genre, len(targets), stop.message)
            except (spotify.InvalidGrant, spotify.SpotifyAuthError) as error:
                stop = _Stop(
                    "Spotify sign-in has expired: sign in again",
                    {"error": "Spotify sign-in has expired", "details": _describe(error)},
                )
                self.fail(genre, len(targets), stop.message)
            except spotify.SpotifyError as error:
                # Unavailable (after retries), Forbidden, NotFound, an unresolved ambiguous
                # write: this genre fails with its real counts, the next one is tried.
                self.fail(genre, len(targets), f"Spotify failed: {_describe(error)}")
            except Exception as error:
                logger.exception("playlist job %s failed on genre %r", self.job.pk, genre)
                self.fail(genre, len(targets), f"unexpected error: {_describe(error)}")
        self.finish(stop.error if stop else None)

    def quota_stop(self, error: spotify.SpotifyRateLimited) -> _Stop:
        retry_after = int(getattr(error, "retry_after", 0) or 0)
        retry_at = timezone.now() + timedelta(seconds=retry_after)
        when = retry_at.strftime("%Y-%m-%d %H:%M UTC")
        kind = "quota" if getattr(error, "quota", False) else "rate limit"
        return _Stop(
            f"paused by Spotify's {kind}, retry after {when}",
            {
                "error": f"Paused by Spotify's {kind}",
                "details": _describe(error),
                "retryAt": iso(retry_at),
            },
        )

    def run_genre(self, genre: str, targets: list[str]) -> None:
        entry = self.entry(genre, len(targets))
        name = playlist_name(self.job.name_pattern, genre)
        row = GenrePlaylist.objects.filter(user=self.job.user, genre=genre).first()
        if row is not None and row.playlist_id and not self.deleted_by_listener(row):
            status = "created" if entry["status"] == "created" else "updated"
            self.fill(entry, row.playlist_id, row.url, targets, status)
            return
        if row is not None and not row.playlist_id:
            # A create may have been sent before a crash or an ambiguous answer.
            found = self.reconcile(row, entry)
            if found is not None:
                self.adopt(row, found)
                self.fill(entry, row.playlist_id, row.url, targets, "created")
                return
        elif self.skipped_as_duplicate(entry, name):
            return
        row = self.create(row, genre, name, entry)
        self.fill(entry, row.playlist_id, row.url, targets, "created")

    def skipped_as_duplicate(self, entry: GenreResult, name: str) -> bool:
        """With ``skipDuplicates``, a playlist of the listener's own with the name the new
        one would get skips the genre."""
        others = self.own_named(name)
        if not others or not self.job.skip_duplicates:
            return False
        other = others[0]
        entry.update(
            status="skipped",
            playlistId=other["id"],
            url=_url(other),
            tracksAdded=0,
            error=None,
            reason=f'a playlist named "{name}" already exists',
            _done=True,
        )
        self.persist()
        return True

    def deleted_by_listener(self, row: GenrePlaylist) -> bool:
        """Swedify's playlist for the genre is gone from the listener's playlists."""
        if row.updated_at > timezone.now() - DELETED_AFTER:
            return False
        if any(p and p.get("id") == row.playlist_id for p in self.playlists()):
            return False
        logger.info(
            "playlist job %s: the listener deleted playlist %s (genre %r); making a new one",
            self.job.pk,
            row.playlist_id,
            row.genre,
        )
        return True

    # -- playlists -----------------------------------------------------------------------

    def playlists(self, fresh: bool = False) -> list[SpotifyPlaylist]:
        if self._playlists is None or fresh:
            self._playlists = list(self.client.my_playlists())
        return self._playlists

    def own_named(self, name: str, fresh: bool = False) -> list[SpotifyPlaylist]:
        key = _normalised(name)
        return [
            p
            for p in self.playlists(fresh)
            if p
            and (p.get("owner") or {}).get("id") == self.owner_id
            and _normalised(p.get("name") or "") == key
        ]

    def preexisting(self, genre: str, entry: GenreResult) -> set[str]:
        """Ids of same-name playlists seen before the last create for this genre."""
        if "_preexisting" in entry:
            return set(entry["_preexisting"])
        recent = PlaylistJob.objects.filter(user=self.job.user).exclude(pk=self.job.pk)
        for job in recent.order_by("-created_at")[:RECONCILE_JOB_LOOKBACK]:
            for old in job.results or []:
                if old.get("genre") == genre and "_preexisting" in old:
                    return set(old["_preexisting"])
        return set()

    def reconcile(self, row: GenrePlaylist, entry: GenreResult) -> SpotifyPlaylist | None:
        """The playlist a pending create made, if Spotify has it."""
        excluded = self.preexisting(row.genre, entry)
        excluded |= set(
            GenrePlaylist.objects.filter(user=self.job.user)
            .exclude(pk=row.pk)
            .exclude(playlist_id="")
            .values_list("playlist_id", flat=True)
        )
        for playlist in self.own_named(row.name, fresh=True):
            if playlist["id"] not in excluded:
                return playlist
        return None

    def adopt(self, row: GenrePlaylist, playlist: SpotifyPlaylist) -> None:
        row.playlist_id = playlist["id"]
        row.url = _url(playlist)
        row.pending_since = None
        row.save(update_fields=["playlist_id", "url", "pending_since", "updated_at"])
        if self._playlists is not None and all(p["id"] != playlist["id"] for p in self._playlists):
            self._playlists.append(playlist)

    def create(
        self, row: GenrePlaylist | None, genre: str, name: str, entry: GenreResult
    ) -> GenrePlaylist:
        """Create Swedify's playlist for the genre; reconciles once after an ambiguous POST."""
        description = self.job.description
        for attempt in range(2):
            # Remembered before sending so a reconcile can tell ours from the listener's.
            entry["_preexisting"] = [p["id"] for p in self.own_named(name, fresh=attempt > 0)]
            row = self.mark_pending(row, genre, name)
            entry["status"] = "created"
            entry.pop("reason", None)
            self.persist()
            try:
                created = self.client.create_playlist(
                    name=name, description=description, public=False
                )
            except spotify.SpotifyAmbiguousWrite:
                found = self.reconcile(row, entry)
                if found is not None:
                    self.adopt(row, found)
                    return row
                continue
            self.adopt(row, created)
            return row
        raise _GenreFailed(
            "Spotify did not confirm creating the playlist; the next run will check for it"
        )

    def mark_pending(self, row: GenrePlaylist | None, genre: str, name: str) -> GenrePlaylist:
        now = timezone.now()
        if row is None:
            try:
                with transaction.atomic():
                    return GenrePlaylist.objects.create(
                        user=self.job.user, genre=genre, name=name, pending_since=now
                    )
            except IntegrityError:
                # Only if a job outside the one-per-listener rule made it meanwhile.
                raise _GenreFailed("another job is creating this playlist; try again") from None
        # A playlist the listener deleted is forgotten here: the row is a pending create now.
        row.name = name
        row.pending_since = now
        row.playlist_id = ""
        row.url = ""
        row.save(update_fields=["name", "pending_since", "playlist_id", "url", "updated_at"])
        return row

    def fill(
        self,
        entry: GenreResult,
        playlist_id: str,
        url: str,
        targets: list[str],
        status: str,
    ) -> None:
        """Add the targets missing from the playlist, 100 at a time, counting what landed."""
        wanted = set(targets)
        present = set(self.client.playlist_track_ids(playlist_id))
        # The count before this job touched the playlist survives a crash in the entry.
        if entry.get("playlistId") != playlist_id or "_before" not in entry:
            entry["_before"] = 0 if status == "created" else len(present & wanted)
        entry.update(
            playlistId=playlist_id,
            url=url or f"https://open.spotify.com/playlist/{playlist_id}",
            status=status,
            error=None,
        )
        entry.pop("reason", None)

        def count() -> None:
            entry["tracksAdded"] = max(0, len(present & wanted) - entry["_before"])

        count()
        self.persist()
        ambiguous = 0
        missing = [t for t in targets if t not in present]
        while missing:
            batch = missing[:ADD_BATCH_SIZE]
            try:
                self.client.add_items(playlist_id, [f"spotify:track:{t}" for t in batch])
                present.update(batch)
            except spotify.SpotifyAmbiguousWrite:
                ambiguous += 1
                if ambiguous > MAX_AMBIGUOUS_WRITES:
                    raise
                # Never re-send blindly: see what the playlist holds now.
                present = set(self.client.playlist_track_ids(playlist_id))
            count()
            self.persist()
            missing = [t for t in targets if t not in present]
        if status == "updated" and entry["tracksAdded"] == 0:
            entry.update(status="skipped", reason="nothing new")
        entry["_done"] = True
        self.persist()
