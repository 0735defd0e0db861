"""Reads of listener state, shared by the JSON API and the pages (no writes here)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from genres.models import (
    Artist,
    GenrePlaylist,
    LibraryTrack,
    PlaylistJob,
    Scan,
    ScanResult,
    SpotifyAccount,
)
from genres.progress import budget_rate, scan_progress

User = AbstractBaseUser | AnonymousUser

# A scan's steps in words, for the pages and (as "stepLabel") for the script that polls a scan.
# Marked for translation here, translated where they are used (step_label), so each request
# gets its listener's language and the table stays plain text.
STEP_LABELS: dict[str, str] = {
    Scan.Step.FETCHING_PROFILE: gettext_noop("Checking your Spotify account"),
    Scan.Step.FETCHING_TRACKS: gettext_noop("Reading your songs"),
    Scan.Step.FETCHING_ARTISTS: gettext_noop("Looking up the artists' genres"),
    Scan.Step.AGGREGATING: gettext_noop("Sorting songs into genres"),
    Scan.Step.DONE: gettext_noop("Done"),
}
# While a scan reads its pages it already looks up their artists (genres.scan_runner).
READING_AND_LOOKING_UP = gettext_noop("Reading your songs and looking up their artists")


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, as the JSON contract writes times."""
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def listener_account(*, user: User | None) -> SpotifyAccount | None:
    """The signed-in listener's Spotify account, or None: anonymous, staff without an account,
    or an account whose refresh token Spotify refused (must sign in again)."""
    if user is None or not user.is_authenticated:
        return None
    account = SpotifyAccount.objects.filter(user_id=user.pk).first()
    if account is None or account.needs_reauth:
        return None
    return account


def latest_result(
    *, user: User | None, with_payload: bool = False, with_summary: bool = True
) -> ScanResult | None:
    """The result of the listener's latest successful scan (a failed scan never replaces it).

    ``payload`` holds every track id (about 1 MB of JSON for 10,000 tracks): loading it costs
    more than a page's whole 100 ms budget under load, so it is deferred unless asked for
    (reading a deferred field later costs one more query, never a wrong answer).
    """
    if user is None or not user.is_authenticated:
        return None
    deferred = ["scan__checkpoint"]
    if not with_payload:
        deferred.append("payload")
    if not with_summary:
        deferred.append("summary")
    return (
        ScanResult.objects.filter(user_id=user.pk, scan__status=Scan.Status.SUCCEEDED)
        .select_related("scan")
        .defer(*deferred)
        .order_by("-created_at")
        .first()
    )


def result_payload(result: ScanResult) -> dict[str, Any]:
    """The contract JSON of GET /api/genres for one stored result.

    Fields are defaulted so a row written by an older version still answers in full.
    """
    payload = dict(result.payload or {})
    payload.setdefault("schemaVersion", result.schema_version)
    payload.setdefault("scanId", str(result.scan_id))
    payload.setdefault("cachedAt", iso(result.created_at))
    payload.setdefault("truncated", result.truncated)
    payload.setdefault("totalTracks", result.total_tracks)
    payload.setdefault("totalArtists", result.total_artists)
    payload.setdefault("genres", [])
    payload.setdefault("totalGenres", len(payload["genres"]))
    payload.setdefault("unclassified", {"count": result.unclassified_count, "trackIds": []})
    return payload


def genres_payload(*, user: User | None) -> dict[str, Any] | None:
    """The contract JSON of GET /api/genres, or None before the first successful scan."""
    result = latest_result(user=user, with_payload=True)
    return None if result is None else result_payload(result)


def active_scan(*, user: User | None) -> Scan | None:
    """The listener's queued, running or paused scan (there is at most one)."""
    if user is None or not user.is_authenticated:
        return None
    return Scan.objects.filter(user_id=user.pk, status__in=Scan.ACTIVE).first()


def latest_scan(*, user: User | None) -> Scan | None:
    """The listener's most recently started scan, whatever its status."""
    if user is None or not user.is_authenticated:
        return None
    return Scan.objects.filter(user_id=user.pk).order_by("-created_at").first()


def scan_for_user(*, user: User | None, scan_id: object) -> Scan | None:
    """One of the listener's scans by id; None for another listener's or an unknown id."""
    if user is None or not user.is_authenticated:
        return None
    return Scan.objects.filter(user_id=user.pk, pk=scan_id).first()


# How many of the listener's latest playlist jobs are read for the playlists' track counts.
RECENT_JOBS = 50
# Results that leave a playlist with a known number of tracks.
_FILLED = ("created", "updated", "skipped")


def genre_playlists(*, user: User | None) -> list[dict[str, Any]]:
    """Every genre playlist Swedify made for the listener, most recently filled first:
    ``genre``, ``name``, ``url`` (Spotify's own links only), ``tracks`` (its size after the
    latest job that filled or checked it, None if no job says) and ``filled_at``.

    Two queries whatever the number of playlists: the rows, and the latest jobs' results.
    """
    if user is None or not user.is_authenticated:
        return []
    rows = list(
        GenrePlaylist.objects.filter(user_id=user.pk)
        .exclude(playlist_id="")
        .values("genre", "name", "url", "updated_at")
    )
    if not rows:
        return []
    latest: dict[str, tuple[int, datetime | None]] = {}
    jobs = (
        PlaylistJob.objects.filter(user_id=user.pk, finished_at__isnull=False)
        .order_by("-finished_at")
        .values_list("results", "finished_at")[:RECENT_JOBS]
    )
    for results, finished_at in jobs:
        for entry in results or []:
            if not isinstance(entry, dict) or entry.get("status") not in _FILLED:
                continue
            genre, total = entry.get("genre"), entry.get("tracksTotal")
            if isinstance(genre, str) and isinstance(total, int) and genre not in latest:
                latest[genre] = (total, finished_at)
    playlists = []
    for row in rows:
        tracks, finished_at = latest.get(row["genre"], (None, None))
        url = row["url"] if str(row["url"]).startswith("https://open.spotify.com/") else ""
        playlists.append(
            {
                "genre": row["genre"],
                "name": row["name"],
                "url": url,
                "tracks": tracks,
                "filled_at": finished_at or row["updated_at"],
            }
        )
    playlists.sort(key=lambda item: item["filled_at"], reverse=True)
    return playlists


# Spotify's web player link of a track; ids are base-62, so nothing needs escaping.
TRACK_URL = "https://open.spotify.com/track/{}"
# Ids per IN query: under every database's limit of bound parameters.
_IN_BATCH = 900


def track_details(*, user: User | None) -> dict[str, dict[str, Any]]:
    """Per track id of the listener's library: ``url`` (Spotify's link), ``artists`` (their
    names in Spotify's order, from the shared artist cache; an artist it does not know is left
    out), ``name`` and ``album`` (the song's and its album's names as the last scan stored
    them, "" when none has: the first scan after names were kept reads every source fully).

    One query for the library plus one per 900 distinct artists; a track in several sources
    is read once (its names from a source that has them).
    """
    if user is None or not user.is_authenticated:
        return {}
    rows = LibraryTrack.objects.filter(user_id=user.pk).values_list(
        "track_id", "artist_ids", "name", "album"
    )
    tracks: dict[str, list[str]] = {}
    titles: dict[str, tuple[str, str]] = {}
    for track_id, artists, name, album in rows:
        if track_id not in tracks:
            tracks[track_id] = [a for a in artists or [] if isinstance(a, str)]
        if name and not titles.get(track_id, ("", ""))[0]:
            titles[track_id] = (name, album)
        titles.setdefault(track_id, (name, album))
    ordered = sorted({a for artists in tracks.values() for a in artists})
    names: dict[str, str] = {}
    for start in range(0, len(ordered), _IN_BATCH):
        batch = ordered[start : start + _IN_BATCH]
        names.update(Artist.objects.filter(spotify_id__in=batch).values_list("spotify_id", "name"))
    return {
        track_id: {
            "url": TRACK_URL.format(track_id),
            "artists": [names[a] for a in artists if names.get(a)],
            "name": titles[track_id][0],
            "album": titles[track_id][1],
        }
        for track_id, artists in tracks.items()
    }


def step_label(*, step: str, artists_to_fetch: int = 0) -> str:
    """A scan's step in words ("" for an unknown step)."""
    if step == Scan.Step.FETCHING_TRACKS and artists_to_fetch:
        return gettext(READING_AND_LOOKING_UP)
    return gettext(STEP_LABELS[step]) if step in STEP_LABELS else ""


def _error_json(error: object) -> object:
    """A scan's stored error, with the words of the step it failed at (additive)."""
    if not isinstance(error, dict) or error.get("step") not in STEP_LABELS:
        return error
    return {**error, "stepLabel": gettext(STEP_LABELS[error["step"]])}


def _progress_json(scan: Scan) -> dict[str, Any]:
    """Additive fields: one percentage across all steps, the time left from the request
    budget (genres.progress), and how many of Spotify's entries were skipped once every page
    is read (local files, unavailable songs, a song in two sources counted once)."""
    elapsed = None
    if scan.started_at is not None:
        elapsed = max(0.0, (timezone.now() - scan.started_at).total_seconds())
    progress = scan_progress(
        status=scan.status,
        step=scan.step,
        tracks_total=scan.tracks_total,
        tracks_found=scan.tracks_found,
        artists_to_fetch=scan.artists_to_fetch,
        artists_fetched=scan.artists_fetched,
        requests_made=scan.requests_made,
        elapsed_seconds=elapsed,
        rate=budget_rate() if scan.status == Scan.Status.RUNNING else 1.0,
    )
    read = scan.step in (Scan.Step.FETCHING_ARTISTS, Scan.Step.AGGREGATING, Scan.Step.DONE)
    return {
        "percent": progress.percent,
        "etaSeconds": progress.eta_seconds,
        "tracksSkipped": max(0, scan.tracks_total - scan.tracks_found) if read else 0,
    }


def scan_json(scan: Scan, *, reused: bool = False) -> dict[str, Any]:
    """The contract's scan object (camelCase, ISO times)."""
    return {
        "id": str(scan.id),
        "status": scan.status,
        "step": scan.step,
        "tracksTotal": scan.tracks_total,
        "tracksFound": scan.tracks_found,
        "artistsToFetch": scan.artists_to_fetch,
        "artistsFetched": scan.artists_fetched,
        "startedAt": iso(scan.started_at),
        "finishedAt": iso(scan.finished_at),
        "resumeAt": iso(scan.resume_at),
        "error": _error_json(scan.error),
        # Additive fields (docs/contract.md allows new fields).
        "reused": reused,
        "stepLabel": step_label(step=scan.step, artists_to_fetch=scan.artists_to_fetch),
        "sources": list(scan.sources or []),
        "createdAt": iso(scan.created_at),
        **_progress_json(scan),
    }
