"""The scan runner: reads a listener's library from Spotify, looks up its artists' genres and
stores the aggregated result, resuming where an earlier attempt stopped.

The scan keeps a ``checkpoint`` (per-source offsets, phase markers) written in the same
transaction as the library rows it describes, so a pause or a crash resumes where it stopped
and re-running a page never duplicates a row (LibraryTrack is unique per user, source, track).

A run is one *slice* of the scan (genres.jobs): when ``JobSlice`` says other work waits, the
client's ``SliceGate`` stops new requests, the pages and artist lookups in flight are
delivered and stored, and the scan yields its worker and is queued again. The same happens
when the shared Spotify budget has no slot for longer than the client's short
``limiter_timeout``: the scan yields for the limiter's ``wait`` instead of holding a worker.
Progress (counts and checkpoint) is written at least every PROGRESS_EVERY seconds while
answers arrive, so the listener's page moves.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypedDict, cast

from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from genres import spotify
from genres.aggregation import aggregate, summary
from genres.artists import artists_lookup, artists_store
from genres.call_stats import SpotifyCallRecorder
from genres.crypto import TokenDecryptionError
from genres.jobs import (
    BUDGET_RECHECK_MAX,
    JOB_LIMITER_TIMEOUT,
    ORIGIN_SYNC,
    RUN_NOT_CLAIMED,
    RUN_YIELDED,
    JobClaimLost,
    JobSlice,
    SliceEnd,
    SliceGate,
    default_worker_id,
)
from genres.library import LibraryRow, library_rows_upsert
from genres.models import LibrarySource, LibraryTrack, Scan, ScanResult, SpotifyAccount
from genres.ratelimit import PRIORITY_BACKGROUND, PRIORITY_INTERACTIVE
from genres.scans import (
    ScanError,
    scan_claim,
    scan_fail,
    scan_heartbeat,
    scan_pause,
    scan_results_prune,
    scan_yield,
)
from genres.selectors import iso
from genres.tokens import AccountTokenProvider, spotify_client_for
from genres.track_names import track_names

logger = logging.getLogger(__name__)

# Spotify's maximum page size for liked songs and playlist items.
PAGE_SIZE = 50
# Pages of a full read written per transaction (with the checkpoint): enough that the writes
# keep up with concurrent fetches, few enough that a pause or a crash re-reads little.
PAGES_PER_WRITE = 4
# Artists per progress write (with their store): one full batch lookup (Extended Quota) or
# a few rounds of concurrent single lookups, so a crash or a pause loses little; the lookups
# go on in the client's threads meanwhile.
ARTIST_CHUNK = spotify.ARTISTS_BATCH_LIMIT
# Followed and top artists are harvested (50 full artists per request) at most this often.
HARVEST_INTERVAL = timedelta(days=7)
# Followed artists are written this many at a time while they are paged (bounded memory).
HARVEST_STORE_BATCH = 500
# When a rate limit cannot be waited out and Spotify gave no usable Retry-After.
DEFAULT_PAUSE = timedelta(minutes=1)
# Progress is written at least this often while answers arrive (the page polls every second
# or two), and at least every ARTIST_CHUNK artists.
PROGRESS_EVERY = 1.5
# A wait for the shared budget up to this long yields the worker and keeps the scan running
# for the listener; a longer one pauses it (the page says when it goes on).
BUDGET_YIELD_MAX = 120.0
# The limiter's reason on SpotifyRateLimited when the shared budget had no slot in time.
LIMITER_TIMEOUT_REASON = "LIMITER_TIMEOUT"

STEP_ERRORS = {
    Scan.Step.FETCHING_PROFILE: "Failed to fetch your profile from Spotify",
    Scan.Step.FETCHING_TRACKS: "Failed to fetch tracks from Spotify",
    Scan.Step.FETCHING_ARTISTS: "Failed to fetch artist data from Spotify",
    Scan.Step.AGGREGATING: "Failed to aggregate genres",
    Scan.Step.DONE: "Failed to save the result",
}
RECONNECT_ERROR = "Spotify sign-in expired or was revoked: sign in with Spotify again"


class SourceState(TypedDict, total=False):
    """Where the read of one source stands, in the checkpoint."""

    mode: str  # "full" or "incremental"
    offset: int  # a full read: the next page's offset
    found: int
    done: bool
    total: int  # Spotify's total at the read's first page
    newest: str | None  # added_at of the newest entry (ISO), for the next incremental read


class ArtistsProgress(TypedDict, total=False):
    fetched: int  # artists stored by this scan, earlier attempts included


class Checkpoint(TypedDict, total=False):
    """What a resumed attempt continues from; written with the rows it describes."""

    sources: dict[str, SourceState]
    profile: bool  # the profile was read
    requestsBefore: int  # Spotify requests of earlier attempts
    artists: ArtistsProgress


def _error_shape(scan: Scan, message: str, details: str) -> ScanError:
    """The error JSON of a failed or paused scan (the contract's scan ``error``)."""
    return {
        "error": message,
        "details": details,
        "step": scan.step,
        "tracksFound": scan.tracks_found,
        "artistsToFetch": scan.artists_to_fetch,
    }


def _details(error: BaseException) -> str:
    if isinstance(error, spotify.SpotifyRateLimited) and _budget_wait(error) is not None:
        return "waiting for Swedify's shared Spotify request budget"
    if isinstance(error, spotify.SpotifyRateLimited):
        text = "429: Too Many Requests"
        return f"{text} (quota exceeded)" if error.quota else text
    return str(error) or type(error).__name__


def _budget_wait(error: spotify.SpotifyRateLimited) -> float | None:
    """Seconds to wait for the shared budget, when the limiter (not Spotify) said no."""
    if getattr(error, "reason", None) != LIMITER_TIMEOUT_REASON:
        return None
    return max(0.0, float(error.retry_after or 0.0))


def scan_run(*, scan_id: object, worker: str | None = None, token: str = "") -> str:
    """Run (or resume) one slice of a scan: to its end, a pause, a failure, or a yield of its
    worker (genres.jobs). Idempotent: a scan that is not claimable (finished, held by a live
    worker, yielded under another token) is left alone.

    Returns the scan's status afterwards, RUN_YIELDED or RUN_NOT_CLAIMED.
    """
    worker = worker or default_worker_id()
    scan = scan_claim(scan_id=scan_id, worker=worker, token=token)
    if scan is None:
        return RUN_NOT_CLAIMED
    account = SpotifyAccount.objects.filter(user_id=scan.user_id).first()
    if account is None or account.needs_reauth:
        scan_fail(
            scan_id=scan.pk,
            worker=worker,
            error=_error_shape(scan, RECONNECT_ERROR, "the Spotify account needs signing in"),
        )
        return Scan.Status.FAILED
    recorder = SpotifyCallRecorder()
    run = _ScanRun(scan=scan, account=account, worker=worker, recorder=recorder)
    try:
        with scan_heartbeat(scan_id=scan.pk, worker=worker):
            run.execute()
        return Scan.Status.SUCCEEDED
    except JobClaimLost:
        logger.warning("scan %s: claim lost to another worker; stopping", scan.pk)
        return RUN_NOT_CLAIMED
    except SliceEnd:
        return _yield(run, delay=run.slice.delay or 0.0)
    except spotify.SpotifyRateLimited as error:
        budget_wait = _budget_wait(error)
        if budget_wait is not None and budget_wait <= BUDGET_YIELD_MAX:
            return _yield(run, delay=min(budget_wait, BUDGET_RECHECK_MAX))
        wait = timedelta(seconds=error.retry_after) if error.retry_after else DEFAULT_PAUSE
        resume_at = timezone.now() + wait
        shape = _error_shape(run.scan, STEP_ERRORS[run.scan.step], _details(error))
        shape["resumeAt"] = iso(resume_at)
        scan_pause(scan_id=scan.pk, worker=worker, resume_at=resume_at, error=shape)
        return Scan.Status.PAUSED
    except (spotify.InvalidGrant, spotify.SpotifyAuthError) as error:
        shape = _error_shape(run.scan, RECONNECT_ERROR, _details(error))
        scan_fail(scan_id=scan.pk, worker=worker, error=shape)
        return Scan.Status.FAILED
    except spotify.SpotifyError as error:
        shape = _error_shape(run.scan, STEP_ERRORS[run.scan.step], _details(error))
        scan_fail(scan_id=scan.pk, worker=worker, error=shape)
        return Scan.Status.FAILED
    except Exception as error:
        if isinstance(error, TokenDecryptionError):
            # The token key was rotated away: only a new sign-in gives us tokens again.
            SpotifyAccount.objects.filter(pk=account.pk).update(needs_reauth=True)
            shape = _error_shape(run.scan, RECONNECT_ERROR, "stored tokens are unreadable")
        else:
            logger.exception("scan %s failed unexpectedly", scan.pk)
            shape = _error_shape(run.scan, STEP_ERRORS[run.scan.step], "Unexpected error")
        scan_fail(scan_id=scan.pk, worker=worker, error=shape)
        return Scan.Status.FAILED
    finally:
        recorder.flush()


def _yield(run: _ScanRun, *, delay: float) -> str:
    """Store the slice's last progress and hand the worker back (genres.jobs)."""
    try:
        run.save()
    except JobClaimLost:
        return RUN_NOT_CLAIMED
    scan_yield(scan_id=run.scan.pk, worker=run.worker, delay=delay)
    return RUN_YIELDED


def _added_at(item: Mapping[str, Any]) -> datetime | None:
    value = item.get("added_at")
    return parse_datetime(value) if isinstance(value, str) else None


def _track_of(item: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """(track id or None, artist ids) of a page item (None: local file or unavailable)."""
    track = item.get("track")
    if not isinstance(track, Mapping) or track.get("is_local"):
        return None, []
    track_id = track.get("id")
    if not isinstance(track_id, str) or not track_id:
        return None, []
    artists = [
        a["id"]
        for a in track.get("artists") or []
        if isinstance(a, Mapping) and isinstance(a.get("id"), str) and a["id"]
    ]
    return track_id, list(dict.fromkeys(artists))


@dataclass
class _ScanRun:
    scan: Scan
    account: SpotifyAccount
    worker: str
    recorder: SpotifyCallRecorder
    # Set up by execute().
    client: spotify.SpotifyClient = field(init=False)
    tokens: AccountTokenProvider = field(init=False)
    checkpoint: Checkpoint = field(default_factory=Checkpoint)
    # Artist lookups run from the first page on, beside the reads (see fetch_artists).
    lookups: spotify.ArtistLookups = field(init=False)
    artists_seen: set[str] = field(default_factory=set)
    artists_arrived: dict[str, Mapping[str, Any] | None] = field(default_factory=dict)
    artists_waiting: int = 0  # asked for in this attempt, not stored yet
    harvest_checked: bool = False
    # When this run yields its worker (genres.jobs), and the client's gate that then stops it.
    slice: JobSlice = field(init=False)
    gate: SliceGate = field(init=False)
    last_store: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.checkpoint = cast(Checkpoint, dict(self.scan.checkpoint or {}))
        self.checkpoint.setdefault("sources", {})
        self.slice = JobSlice(
            user_id=self.scan.user_id,
            background=self.scan.origin == ORIGIN_SYNC,
            service=lambda: self.scan.requests_made,
        )

    # -- bookkeeping --

    def save(self, **changes: Any) -> None:
        """Write progress + checkpoint + heartbeat, only while this worker holds the scan."""
        for name, value in changes.items():
            setattr(self.scan, name, value)
        self.scan.requests_made = self.recorder.calls + (self.checkpoint.get("requestsBefore", 0))
        fields = {
            "step": self.scan.step,
            "tracks_total": self.scan.tracks_total,
            "tracks_found": self.scan.tracks_found,
            "artists_to_fetch": self.scan.artists_to_fetch,
            "artists_fetched": self.scan.artists_fetched,
            "requests_made": self.scan.requests_made,
            "checkpoint": self.checkpoint,
            "heartbeat_at": timezone.now(),
        }
        if not Scan.objects.owned_by(pk=self.scan.pk, worker=self.worker).update(**fields):
            raise JobClaimLost(str(self.scan.pk))
        self.recorder.maybe_flush()
        # Never raises here (a save may sit inside a transaction): the gate stops new
        # requests, and the run ends where they fail, after storing what was in flight.
        if self.slice.over():
            self.gate.close()

    # -- the steps --

    def execute(self) -> None:
        # Requests of earlier attempts (before a pause or a crash) still count.
        self.checkpoint["requestsBefore"] = self.scan.requests_made
        self.tokens = AccountTokenProvider(account_pk=self.account.pk)
        self.gate = SliceGate(self.tokens)
        background = self.scan.origin == ORIGIN_SYNC
        self.client = spotify_client_for(
            account=self.account,
            on_call=self.recorder.record,
            tokens=self.gate,
            priority=PRIORITY_BACKGROUND if background else PRIORITY_INTERACTIVE,
            limiter_timeout=JOB_LIMITER_TIMEOUT,
        )
        self.tokens.access_token()  # load (or refresh) the token in this thread
        if not self.checkpoint.get("profile"):
            self.save(step=Scan.Step.FETCHING_PROFILE)
            self.client.me()
            self.checkpoint["profile"] = True
        with self.client.artist_lookups(self._artist_answer) as self.lookups:
            try:
                self.save(step=Scan.Step.FETCHING_TRACKS)
                for source in self.scan.sources:
                    self.read_source(source)
                self.save(tracks_found=self._distinct_tracks())
                self.save(step=Scan.Step.FETCHING_ARTISTS)
                self.fetch_artists()
            except BaseException as error:
                # Keep the artists that did arrive (also before a pause), so a resume does not
                # ask for them again; a failure to store them must not hide the first error.
                try:
                    if self._yields_on(error):
                        self._drain_lookups()
                    self._artists_store_arrived()
                except Exception:  # noqa: BLE001 - the original error is raised
                    logger.warning("scan %s: arrived artists not stored", self.scan.pk)
                raise
        self.save(step=Scan.Step.AGGREGATING)
        self.finish()

    @staticmethod
    def _yields_on(error: BaseException) -> bool:
        """Whether ``error`` ends the run with a yield (not a pause or a failure)."""
        if isinstance(error, SliceEnd):
            return True
        return isinstance(error, spotify.SpotifyRateLimited) and _budget_wait(error) is not None

    def _drain_lookups(self) -> None:
        """Before a yield: no new lookup starts, the ones in flight (paid for) are delivered."""
        self.gate.close()
        try:
            self.lookups.finish()
        except Exception as error:  # noqa: BLE001 - the run ends with the error that stopped it
            logger.debug("scan %s: lookups drained (%s)", self.scan.pk, type(error).__name__)

    def _library(self) -> QuerySet[LibraryTrack]:
        return LibraryTrack.objects.filter(user_id=self.scan.user_id, source__in=self.scan.sources)

    def _distinct_tracks(self) -> int:
        return self._library().values("track_id").distinct().count()

    def _progress(self) -> dict[str, int]:
        states = self.checkpoint["sources"].values()
        return {
            "tracks_total": sum(state.get("total", 0) for state in states),
            "tracks_found": sum(state.get("found", 0) for state in states),
        }

    def read_source(self, source: str) -> None:
        state = self.checkpoint["sources"].get(source) or {}
        if state.get("done"):
            return
        if source == "liked":

            def fetch(offset: int) -> spotify.Page:
                return self.client.liked_page(offset=offset, limit=PAGE_SIZE)

            # An interrupted incremental read keeps nothing, so it simply starts over: it is a
            # page or two (only a full read is worth resuming mid-way).
            if state.get("mode") != "full" and self.read_incrementally(source, fetch):
                return
        else:
            playlist_id = source.partition(":")[2]

            def fetch(offset: int) -> spotify.Page:
                return self.client.playlist_items_page(playlist_id, offset=offset, limit=PAGE_SIZE)

        self.read_fully(source, fetch)

    def read_incrementally(self, source: str, fetch: Callable[[int], spotify.Page]) -> bool:
        """Read only what is new since the last complete read; False if a full read is needed.

        Liked songs come newest first, so new likes are the entries before the first one we
        know. Unliking is invisible to that, so Spotify's total must equal what we knew plus
        what is new; if not, something was removed (or changed behind the known part) and
        only a full read can say what, so we do one rather than keep tracks that are gone.
        """
        known_source = LibrarySource.objects.filter(
            user_id=self.scan.user_id, source=source, complete=True
        ).first()
        if known_source is None:
            return False
        fresh: list[Mapping[str, Any]] = []
        offset = 0
        total: int | None = None
        while True:
            page = fetch(offset)
            if total is None:
                total = page.total
            ids = [tid for tid, _ in map(_track_of, page.items) if tid]
            known = set(
                LibraryTrack.objects.filter(
                    user_id=self.scan.user_id, source=source, track_id__in=ids
                ).values_list("track_id", flat=True)
            )
            stop = False
            for item in page.items:
                track_id, _ = _track_of(item)
                if track_id:
                    stop = track_id in known
                else:
                    # No id to match: entries not newer than the newest known one are old.
                    added = _added_at(item)
                    newest = known_source.newest_added_at
                    stop = bool(added and newest and added <= newest)
                if stop:
                    break
                fresh.append(item)
            offset += len(page.items)
            if stop or not page.items or page.next is None or offset >= page.total:
                break
        if known_source.total + len(fresh) != total:
            logger.info(
                "scan %s: %s changed behind the newest known track; reading it fully",
                self.scan.pk,
                source,
            )
            return False
        rows = self._rows(source, fresh, first_position=0, seen=None)
        newest_at = max(
            (a for a in map(_added_at, fresh) if a), default=known_source.newest_added_at
        )
        state = SourceState(mode="incremental", done=True, total=total, found=0)
        with transaction.atomic():
            LibraryTrack.objects.bulk_create([row.model() for row in rows], ignore_conflicts=True)
            LibrarySource.objects.filter(pk=known_source.pk).update(
                total=total, newest_added_at=newest_at, synced_at=timezone.now()
            )
            state["found"] = LibraryTrack.objects.filter(
                user_id=self.scan.user_id, source=source
            ).count()
            self.checkpoint["sources"][source] = state
            self.save(**self._progress())
        return True

    def _rows(
        self,
        source: str,
        items: Iterable[Mapping[str, Any]],
        *,
        first_position: int,
        seen: uuid.UUID | None,
    ) -> list[LibraryRow]:
        rows: dict[str, LibraryRow] = {}
        user_id = self.scan.user_id
        for position, item in enumerate(items, start=first_position):
            track_id, artist_ids = _track_of(item)
            if track_id and track_id not in rows:
                added = _added_at(item)
                name, album = track_names(item)
                rows[track_id] = LibraryRow(
                    user_id, source, track_id, artist_ids, added, position, seen, name, album
                )
        return list(rows.values())

    def read_fully(self, source: str, fetch: Callable[[int], spotify.Page]) -> None:
        """Read every page, resuming at the checkpoint's offset; then drop what is gone."""
        state = self.checkpoint["sources"].get(source) or {}
        if state.get("mode") != "full":
            state = SourceState(mode="full", offset=0, found=0, done=False)
            self.checkpoint["sources"][source] = state
            # Until this read completes, the rows are not a faithful mirror: no incremental
            # read may trust them.
            LibrarySource.objects.update_or_create(
                user_id=self.scan.user_id, source=source, defaults={"complete": False}
            )
            self.save(**self._progress())
        # Pages after the first arrive `concurrency` at a time, in order; they are written
        # PAGES_PER_WRITE or more at a time (fewer, larger transactions keep up with the
        # fetches), so positions and the checkpoint stay exact.
        self.tokens.access_token()  # refresh here, not in a page thread
        pending: list[spotify.Page] = []
        # A run interrupted after its last page (a yield, a pause, a crash) has read it all:
        # asking for the page past the end would cost a request for nothing.
        read_all = "total" in state and state["offset"] >= state["total"]
        pages = iter(()) if read_all else self.client.pages_in_order(fetch, offset=state["offset"])
        try:
            for run in pages:
                pending.extend(run)
                if len(pending) >= PAGES_PER_WRITE:
                    batch, pending = pending, []
                    self._artists_ask(self._write_pages(source, state, batch))
                    self._artists_deliver()
        finally:
            # Also before an error is raised: the pages that did arrive are kept.
            if pending:
                batch, pending = pending, []
                self._artists_ask(self._write_pages(source, state, batch))
        with transaction.atomic():
            LibraryTrack.objects.filter(user_id=self.scan.user_id, source=source).exclude(
                seen_scan=self.scan.pk
            ).delete()
            LibrarySource.objects.update_or_create(
                user_id=self.scan.user_id,
                source=source,
                defaults={
                    "total": state.get("total", 0),
                    "newest_added_at": parse_datetime(state["newest"])
                    if state.get("newest")
                    else None,
                    "complete": True,
                    "synced_at": timezone.now(),
                },
            )
            state["done"] = True
            self.save(**self._progress())

    def _write_pages(self, source: str, state: SourceState, pages: list[spotify.Page]) -> set[str]:
        """Store consecutive pages of a full read and move its checkpoint past them; the
        artist ids of their tracks."""
        offset = state["offset"]
        merged: dict[str, LibraryRow] = {}
        found = 0
        for page in pages:
            if offset == 0:
                state["total"] = page.total
                first = _added_at(page.items[0]) if page.items else None
                state["newest"] = iso(first)
            state.setdefault("total", page.total)
            rows = self._rows(source, page.items, first_position=offset, seen=self.scan.pk)
            # A track liked twice: the later page wins, as it would written page by page.
            merged.update((row.track_id, row) for row in rows)
            found += len(rows)
            offset += len(page.items)
        with transaction.atomic():
            if merged:
                library_rows_upsert(rows=list(merged.values()))
            state["offset"] = offset
            state["found"] = state.get("found", 0) + found
            self.save(**self._progress())
        self.tokens.access_token()
        return {artist_id for row in merged.values() for artist_id in row.artist_ids}

    def _artist_ids(self) -> list[str]:
        ids: dict[str, None] = {}
        for artist_ids in self._library().values_list("artist_ids", flat=True).iterator():
            for artist_id in artist_ids or ():
                ids[artist_id] = None
        return list(ids)

    def fetch_artists(self) -> None:
        """Genres for every artist of the library: from the shared cache, then a harvest of
        followed and top artists (50 per request), then the client's lookups of the unknown
        ones (batches of 50 in Extended Quota, else one request per artist), concurrently.

        A full read asks for its pages' unknown artists as it stores them, so most lookups
        have run beside the reads by now; this asks for the rest (an incremental read's, or
        those of pages an interrupted attempt stored) and waits for every answer.
        """
        self._artists_ask(self._artist_ids())
        self.tokens.access_token()  # refresh here, not in a lookup thread
        self.lookups.finish()
        self._artists_store_arrived()

    def _artists_ask(self, artist_ids: Iterable[str]) -> None:
        """Queue the lookups of those of ``artist_ids`` that neither this scan has seen nor
        the shared cache knows; harvest followed and top artists first if due."""
        fresh = [a for a in artist_ids if a not in self.artists_seen]
        if not fresh:
            return
        self.artists_seen.update(fresh)
        known = artists_lookup(fresh)
        unknown = [a for a in fresh if a not in known]
        if not unknown:
            return
        with self._artists_step_on_error():
            # Not once the slice is over: the next slice harvests as a whole.
            if not self.harvest_checked and not self.gate.closed:
                self.harvest_checked = True
                if self._harvest_due():
                    # What the harvest stored is known now: no second look in the cache.
                    harvested = self.harvest()
                    unknown = [a for a in unknown if a not in harvested]
            self.artists_waiting += len(unknown)
            # Written with the next save (each store, each page write).
            self.scan.artists_to_fetch = self._artists_fetched() + self.artists_waiting
            # A slice that is over refuses the first batch lookup (sent from this thread):
            # the read goes on storing its pages in flight; the next slice asks again.
            with suppress(SliceEnd):
                self.lookups.add(unknown)

    @contextmanager
    def _artists_step_on_error(self) -> Iterator[None]:
        """An error of the artist work (it runs beside the reads) is reported as the
        fetching_artists step's, whatever step the scan is at."""
        try:
            yield
        except SliceEnd:
            raise  # the end of a slice, not an error of any step
        except Exception:
            self.scan.step = Scan.Step.FETCHING_ARTISTS
            raise

    def _artist_answer(self, artist_id: str, artist: Mapping[str, Any] | None) -> None:
        # None: Spotify does not know the id; remembered as "no genres", not asked again.
        self.artists_arrived[artist_id] = artist
        due = time.monotonic() - self.last_store >= PROGRESS_EVERY
        if len(self.artists_arrived) >= ARTIST_CHUNK or due:
            self._artists_store_arrived()
            self.tokens.access_token()

    def _artists_deliver(self) -> None:
        """Store the lookups that have arrived, without waiting for the others."""
        # A slice that is over: the read goes on until its pages in flight are stored, and
        # the yield delivers the lookups still in flight.
        with self._artists_step_on_error(), suppress(SliceEnd):
            self.lookups.deliver()
        self._artists_store_arrived()

    def _artists_store_arrived(self) -> None:
        if not self.artists_arrived:
            return
        batch = dict(self.artists_arrived)
        self.artists_arrived.clear()  # a failed write is not retried by a later store
        self.last_store = time.monotonic()
        artists_store(batch)
        self.artists_waiting = max(0, self.artists_waiting - len(batch))
        progress = self.checkpoint.setdefault("artists", {})
        progress["fetched"] = progress.get("fetched", 0) + len(batch)
        self._artists_progress()

    def _artists_fetched(self) -> int:
        """Artists stored by this scan, earlier attempts included."""
        return self.checkpoint.setdefault("artists", {}).get("fetched", 0)

    def _artists_progress(self) -> None:
        fetched = self._artists_fetched()
        self.save(artists_fetched=fetched, artists_to_fetch=fetched + self.artists_waiting)

    def _harvest_due(self) -> bool:
        last = (
            SpotifyAccount.objects.filter(pk=self.account.pk)
            .values_list("artists_harvested_at", flat=True)
            .first()
        )
        return last is None or last < timezone.now() - HARVEST_INTERVAL

    def harvest(self) -> set[str]:
        """Followed and top artists (full, 50 a request) into the shared artist store; the
        ids stored.

        The top artists (one request per time range) are fetched in worker threads while the
        followed ones are paged here, within the client's concurrency; every database write
        stays on this thread.
        """
        self.tokens.access_token()  # refresh here, not in a harvest thread
        ranges = spotify.TOP_ARTISTS_TIME_RANGES
        workers = min(len(ranges), self.client.concurrency - 1)
        stored: set[str] = set()
        if workers < 1:
            stored.update(self._harvest_followed())
            stored.update(i.id for i in artists_store(list(self.client.top_artists(ranges))))
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scan-harvest") as pool:
                top = [
                    pool.submit(lambda r: list(self.client.top_artists((r,))), time_range)
                    for time_range in ranges
                ]
                stored.update(self._harvest_followed())
                for future in top:
                    stored.update(info.id for info in artists_store(future.result()))
        SpotifyAccount.objects.filter(pk=self.account.pk).update(
            artists_harvested_at=timezone.now()
        )
        return stored

    def _harvest_followed(self) -> set[str]:
        stored: set[str] = set()
        batch: list[Mapping[str, Any]] = []
        for artist in self.client.followed_artists():
            batch.append(artist)
            if len(batch) >= HARVEST_STORE_BATCH:
                stored.update(info.id for info in artists_store(batch))
                batch = []
        stored.update(info.id for info in artists_store(batch))
        return stored

    def _ordered_tracks(self) -> list[tuple[str, list[str]]]:
        tracks: list[tuple[str, list[str]]] = []
        for source in self.scan.sources:
            rows = (
                LibraryTrack.objects.filter(user_id=self.scan.user_id, source=source)
                .order_by(F("added_at").desc(nulls_last=True), "position")
                .values_list("track_id", "artist_ids")
            )
            if source != "liked":
                rows = rows.order_by("position")
            tracks.extend((track_id, artist_ids or []) for track_id, artist_ids in rows.iterator())
        return tracks

    def finish(self) -> None:
        tracks = self._ordered_tracks()
        artist_ids = list(dict.fromkeys(a for _, ids in tracks for a in ids))
        infos = artists_lookup(artist_ids)
        missing = len(artist_ids) - len(infos)
        if missing:
            logger.warning("scan %s: %d artists without genres data", self.scan.pk, missing)
        payload = aggregate(
            tracks,
            {artist_id: info.genres for artist_id, info in infos.items()},
            truncated=self.scan.truncated,
        )
        now = timezone.now()
        full = {"schemaVersion": ScanResult.SCHEMA_VERSION, "scanId": str(self.scan.pk)}
        full["cachedAt"] = iso(now)
        full.update(payload)
        with transaction.atomic():
            # Race: a worker that lost its claim must not mark the scan done twice.
            done = Scan.objects.owned_by(pk=self.scan.pk, worker=self.worker).update(
                status=Scan.Status.SUCCEEDED,
                step=Scan.Step.DONE,
                finished_at=now,
                heartbeat_at=now,
                error=None,
                claimed_by="",
                tracks_found=payload["totalTracks"],
                requests_made=self.recorder.calls + self.checkpoint.get("requestsBefore", 0),
            )
            if not done:
                raise JobClaimLost(str(self.scan.pk))
            ScanResult.objects.create(
                scan_id=self.scan.pk,
                user_id=self.scan.user_id,
                total_tracks=payload["totalTracks"],
                total_artists=payload["totalArtists"],
                total_genres=payload["totalGenres"],
                unclassified_count=payload["unclassified"]["count"],
                truncated=payload["truncated"],
                summary=summary(payload),
                payload=full,
            )
        scan_results_prune(user_id=self.scan.user_id)
