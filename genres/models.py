"""Listener-side records: linked Spotify accounts, scans, the shared artist cache, results,
playlist jobs and the playlists Swedify made.

The job rows (Scan, PlaylistJob) are the truth about progress: pages poll them, workers claim
them with compare-and-set, and a retried task resumes from what they say.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q

from genres.jobs import ClaimedJob


class JobOrigin(models.TextChoices):
    """Who asked for a job: a listener (interactive) or auto-sync (background priority)."""

    LISTENER = "listener"
    SYNC = "sync"


class SpotifyAccount(models.Model):
    """A listener's link to Spotify. Tokens live only here, the refresh token encrypted."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="spotify_account"
    )
    spotify_id = models.CharField(max_length=128, unique=True)
    # Spotify's stable account id, preferred for linking when present.
    account_id = models.CharField(max_length=128, null=True, blank=True, unique=True)
    display_name = models.CharField(max_length=256, blank=True)
    access_token_encrypted = models.TextField(blank=True)
    refresh_token_encrypted = models.TextField(blank=True)
    token_expires_at = models.DateTimeField(null=True, blank=True)
    scopes = models.TextField(blank=True)
    # Set when Spotify answered invalid_grant: the listener must sign in again.
    needs_reauth = models.BooleanField(default=False)
    # Last time followed and top artists were harvested into the shared artist cache; a
    # rescan soon after does not pay for that again.
    artists_harvested_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.display_name or self.spotify_id


class Scan(ClaimedJob):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        PAUSED = "paused"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    class Step(models.TextChoices):
        FETCHING_PROFILE = "fetching_profile"
        FETCHING_TRACKS = "fetching_tracks"
        FETCHING_ARTISTS = "fetching_artists"
        AGGREGATING = "aggregating"
        DONE = "done"

    ACTIVE = (Status.QUEUED, Status.RUNNING, Status.PAUSED)

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="scans"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    step = models.CharField(max_length=24, choices=Step.choices, default=Step.FETCHING_PROFILE)
    # ["liked", "playlist:<id>", ...]
    sources = models.JSONField(default=list)
    refresh = models.BooleanField(default=False)
    tracks_total = models.PositiveIntegerField(default=0)
    tracks_found = models.PositiveIntegerField(default=0)
    artists_to_fetch = models.PositiveIntegerField(default=0)
    artists_fetched = models.PositiveIntegerField(default=0)
    requests_made = models.PositiveIntegerField(default=0)
    truncated = models.BooleanField(default=False)
    # Where a paused or interrupted scan continues (per-source offsets, phase markers).
    checkpoint = models.JSONField(default=dict, blank=True)
    # The contract's error shape: {"error", "details", "step", "tracksFound", "artistsToFetch"}.
    error = models.JSONField(null=True, blank=True)
    # A paused scan (Spotify's quota) may be claimed again from then on.
    resume_at = models.DateTimeField(null=True, blank=True)
    # Sync work runs at background priority under the shared Spotify budget.
    origin = models.CharField(max_length=16, choices=JobOrigin.choices, default=JobOrigin.LISTENER)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "-created_at"]), models.Index(fields=["status"])]
        constraints = [
            # The database's own guard against two concurrent POSTs both starting a scan;
            # scan_start also serializes on the account row so the loser gets the winner's scan.
            models.UniqueConstraint(
                fields=["user"],
                condition=models.Q(status__in=["queued", "running", "paused"]),
                name="one_active_scan_per_user",
            )
        ]

    def __str__(self) -> str:
        return f"scan {self.id} ({self.status})"

    @classmethod
    def due_to_resume(cls, now: datetime) -> Q:
        return Q(status=cls.Status.PAUSED, resume_at__lte=now)


class LibraryTrack(models.Model):
    """One track of a listener's library as last seen: the basis of incremental rescans."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="library_tracks"
    )
    track_id = models.CharField(max_length=64)
    # "liked" or "playlist:<id>"; a track in several sources has one row per source.
    source = models.CharField(max_length=96)
    artist_ids = models.JSONField(default=list)
    added_at = models.DateTimeField(null=True, blank=True)
    position = models.PositiveIntegerField(default=0)
    # The scan that last saw this row during a full read; rows a full read did not see are
    # gone from Spotify and are deleted when that read completes.
    seen_scan = models.UUIDField(null=True, blank=True)
    # The song's and its album's names as Spotify last gave them, cleaned by
    # genres.track_names (bounded, no control characters); "" until a scan has stored them.
    name = models.CharField(max_length=512, blank=True, default="")
    album = models.CharField(max_length=512, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "source", "track_id"], name="library_track_once_per_source"
            )
        ]
        indexes = [models.Index(fields=["user", "source", "position"])]


class LibrarySource(models.Model):
    """What Swedify last knew about one source of a listener's library as a whole.

    ``complete`` is true only when the LibraryTrack rows of the source mirror Spotify as of
    ``total``; only then may a rescan read incrementally (newest first, stop at the first
    known track) and trust the count check.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="library_sources"
    )
    source = models.CharField(max_length=96)
    # Spotify's `total` (every entry, local files and unavailable ones included).
    total = models.PositiveIntegerField(default=0)
    # added_at of the newest entry: entries without a track id cannot be matched by id, so
    # they count as known when they are not newer than this.
    newest_added_at = models.DateTimeField(null=True, blank=True)
    complete = models.BooleanField(default=False)
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "source"], name="library_source_once")
        ]


class Artist(models.Model):
    """Artist -> genres, shared by all listeners (a durable cache behind Redis)."""

    spotify_id = models.CharField(max_length=64, primary_key=True)
    name = models.CharField(max_length=512, blank=True)
    genres = models.JSONField(default=list)
    fetched_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.name or self.spotify_id


class ScanResult(models.Model):
    """The aggregated genres of a successful scan, stored once, read by pages and the API."""

    SCHEMA_VERSION = 1

    scan = models.OneToOneField(Scan, on_delete=models.CASCADE, related_name="result")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="scan_results"
    )
    schema_version = models.PositiveSmallIntegerField(default=SCHEMA_VERSION)
    total_tracks = models.PositiveIntegerField(default=0)
    total_artists = models.PositiveIntegerField(default=0)
    total_genres = models.PositiveIntegerField(default=0)
    unclassified_count = models.PositiveIntegerField(default=0)
    truncated = models.BooleanField(default=False)
    # [{"name", "count"}] sorted as the contract says: what the genres page needs, small.
    summary = models.JSONField(default=list)
    # The full contract payload of GET /api/genres (with trackIds).
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["user", "-created_at"])]


class PlaylistJob(ClaimedJob):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        PARTIAL = "partial"
        FAILED = "failed"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="playlist_jobs"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    genres = models.JSONField(default=list)
    name_pattern = models.CharField(max_length=200, default="{genre} (from Likes)")
    description = models.CharField(max_length=300, blank=True)
    skip_duplicates = models.BooleanField(default=True)
    # The scan whose result the job uses, so a rescan mid-job does not change its tracks.
    scan = models.ForeignKey(Scan, on_delete=models.SET_NULL, null=True, blank=True)
    # Contract "results": one entry per genre, updated as the job goes.
    results = models.JSONField(default=list)
    error = models.JSONField(null=True, blank=True)
    # Sync work runs at background priority under the shared Spotify budget.
    origin = models.CharField(max_length=16, choices=JobOrigin.choices, default=JobOrigin.LISTENER)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"playlist job {self.id} ({self.status})"


class GenrePlaylist(models.Model):
    """The playlist Swedify made for one listener and genre; later jobs keep filling it."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="genre_playlists"
    )
    genre = models.CharField(max_length=512)
    playlist_id = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=512)
    url = models.URLField(blank=True)
    # Set before the create request is sent, cleared once Spotify's answer is stored: a row
    # with pending_since and no playlist_id means "a create may have happened; reconcile".
    pending_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "genre"], name="one_playlist_per_user_genre")
        ]


class SpotifyCallBucket(models.Model):
    """Spotify call outcomes per minute and endpoint, for the operators' rate-limit page."""

    minute = models.DateTimeField()
    endpoint = models.CharField(max_length=96)
    calls = models.PositiveIntegerField(default=0)
    ok = models.PositiveIntegerField(default=0)
    client_errors = models.PositiveIntegerField(default=0)
    server_errors = models.PositiveIntegerField(default=0)
    network_errors = models.PositiveIntegerField(default=0)
    rate_limited = models.PositiveIntegerField(default=0)
    quota_exceeded = models.PositiveIntegerField(default=0)
    total_ms = models.PositiveBigIntegerField(default=0)
    max_ms = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["minute", "endpoint"], name="one_bucket_per_minute")
        ]
        indexes = [models.Index(fields=["-minute"])]
        # The admin index links this model's changelist, which is the rate-limit page.
        verbose_name = "Spotify calls (last hour)"
        verbose_name_plural = "Spotify calls (last hour)"


class SyncSchedule(models.Model):
    """A listener's auto-sync: whether it is on, how often, and what the last run did.

    ``next_run_at`` is when the beat may start the next run (jittered so listeners who turned
    it on together do not all sync in the same minute); ``running_since`` marks a run in
    progress so a second trigger answers with it instead of starting another.
    """

    class Stopped(models.TextChoices):
        NONE = ""
        REAUTH = "reauth"  # Spotify answered invalid_grant: the listener must sign in again
        DISCONNECTED = "disconnected"  # the listener disconnected Spotify

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sync_schedule"
    )
    enabled = models.BooleanField(default=False)
    interval_hours = models.PositiveSmallIntegerField(default=6)
    remove_unliked = models.BooleanField(default=False)
    last_run_at = models.DateTimeField(null=True, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    # The contract's lastResult: {"status", "tracksAdded", "tracksRemoved",
    # "playlistsUpdated", "error"}.
    last_result = models.JSONField(null=True, blank=True)
    # Why auto-sync turned itself off (shown on the home page); empty while it is not stopped.
    stopped_reason = models.CharField(
        max_length=16, choices=Stopped.choices, default=Stopped.NONE, blank=True
    )
    running_since = models.DateTimeField(null=True, blank=True)
    # A lease: the driver advancing the run (the run's own task, or the beat's tick) holds it
    # until then, so two drivers never both start its playlist job or both finish it.
    advancing_until = models.DateTimeField(null=True, blank=True)
    # Who asked for the run in progress: the beat (background) or "Sync now" (the listener).
    run_origin = models.CharField(
        max_length=16, choices=JobOrigin.choices, default=JobOrigin.SYNC, blank=True
    )
    # The run in progress: its incremental scan, then the playlist job that adds new likes.
    scan = models.ForeignKey(
        Scan, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    playlist_job = models.ForeignKey(
        PlaylistJob, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # What the last run left in each genre playlist: {genre: {"playlistId", "tracks"}}. Only
    # tracks of a scan that are not in here are new, so a run that finds nothing new makes no
    # playlist calls; tracks in here that are no longer liked are the ones removeUnliked takes.
    baseline = models.JSONField(default=dict, blank=True)
    # Counted for the admin's sync health: consecutive failed runs.
    failures = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["enabled", "next_run_at"])]

    def __str__(self) -> str:
        return f"sync for {self.user_id} ({'on' if self.enabled else 'off'})"
