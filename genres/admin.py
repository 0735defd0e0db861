"""The operators' view of the listener side: scans, playlist jobs, accounts (never tokens),
the shared artist cache, and the Spotify calls page (rate limits at a glance).

Job rows are history written by workers: the admin shows them and changes nothing.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Max, Sum
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html

from genres import ratelimit
from genres.call_stats import COUNTERS, limited_share
from genres.models import (
    Artist,
    GenrePlaylist,
    PlaylistJob,
    Scan,
    SpotifyAccount,
    SpotifyCallBucket,
)
from swedify.admin_helpers import ReadOnlyAdmin, badge

logger = logging.getLogger(__name__)

# The Spotify calls page looks this far back, and lists this many slowest endpoints.
CALLS_WINDOW = timedelta(hours=1)
SLOWEST_ENDPOINTS = 10


def duration(started: datetime | None, finished: datetime | None) -> str:
    if started is None:
        return "-"
    seconds = int(((finished or timezone.now()) - started).total_seconds())
    minutes, seconds = divmod(max(0, seconds), 60)
    hours, minutes = divmod(minutes, 60)
    text = f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds:02d}s"
    return text if finished else f"{text} (so far)"


def pretty_json(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


@admin.register(Scan)
class ScanAdmin(ReadOnlyAdmin):
    list_display = (
        "short_id",
        "user",
        "status_badge",
        "step",
        "tracks",
        "artists",
        "requests_made",
        "run_time",
        "created_at",
        "error_text",
    )
    list_filter = ("status", "step")
    list_select_related = ("user",)
    search_fields = ("=id", "user__username")
    date_hierarchy = "created_at"
    exclude = ("checkpoint", "error")
    readonly_fields = ("error_json", "checkpoint_json")

    @admin.display(description="scan")
    def short_id(self, obj: Scan) -> str:
        return str(obj.pk)[:8]

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Scan) -> str:
        label = obj.get_status_display()
        if obj.status == Scan.Status.PAUSED and obj.resume_at:
            label = f"{label} until {timezone.localtime(obj.resume_at):%H:%M}"
        return badge(label, obj.status)

    @admin.display(description="tracks found / total")
    def tracks(self, obj: Scan) -> str:
        return f"{obj.tracks_found} / {obj.tracks_total}"

    @admin.display(description="artists fetched / to fetch")
    def artists(self, obj: Scan) -> str:
        return f"{obj.artists_fetched} / {obj.artists_to_fetch}"

    @admin.display(description="duration")
    def run_time(self, obj: Scan) -> str:
        return duration(obj.started_at, obj.finished_at)

    @admin.display(description="error")
    def error_text(self, obj: Scan) -> str:
        if not isinstance(obj.error, dict):
            return ""
        return f"{obj.error.get('error', '')}: {obj.error.get('details', '')}"

    @admin.display(description="error")
    def error_json(self, obj: Scan) -> str:
        return pretty_json(obj.error)

    @admin.display(description="checkpoint")
    def checkpoint_json(self, obj: Scan) -> str:
        return pretty_json(obj.checkpoint)


@admin.register(PlaylistJob)
class PlaylistJobAdmin(ReadOnlyAdmin):
    list_display = (
        "short_id",
        "user",
        "status_badge",
        "genre_count",
        "outcome",
        "run_time",
        "created_at",
        "error_text",
    )
    list_filter = ("status",)
    list_select_related = ("user",)
    search_fields = ("=id", "user__username")
    date_hierarchy = "created_at"
    exclude = ("results", "error")
    readonly_fields = ("results_json", "error_json")

    @admin.display(description="job")
    def short_id(self, obj: PlaylistJob) -> str:
        return str(obj.pk)[:8]

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: PlaylistJob) -> str:
        return badge(obj.get_status_display(), obj.status)

    @admin.display(description="genres")
    def genre_count(self, obj: PlaylistJob) -> int:
        return len(obj.genres or [])

    @admin.display(description="created / updated / skipped / failed; tracks added")
    def outcome(self, obj: PlaylistJob) -> str:
        counts = dict.fromkeys(("created", "updated", "skipped", "failed"), 0)
        added = 0
        for entry in obj.results or []:
            if isinstance(entry, dict):
                if entry.get("status") in counts:
                    counts[entry["status"]] += 1
                added += entry.get("tracksAdded") or 0
        return " / ".join(str(n) for n in counts.values()) + f"; {added}"

    @admin.display(description="duration")
    def run_time(self, obj: PlaylistJob) -> str:
        return duration(obj.started_at, obj.finished_at)

    @admin.display(description="error")
    def error_text(self, obj: PlaylistJob) -> str:
        if isinstance(obj.error, dict):
            return str(obj.error.get("error", ""))
        return ""

    @admin.display(description="results")
    def results_json(self, obj: PlaylistJob) -> str:
        return pretty_json(obj.results)

    @admin.display(description="error")
    def error_json(self, obj: PlaylistJob) -> str:
        return pretty_json(obj.error)


@admin.register(SpotifyAccount)
class SpotifyAccountAdmin(ReadOnlyAdmin):
    list_display = (
        "spotify_id",
        "display_name",
        "user",
        "needs_reauth",
        "token_expires_at",
        "created_at",
    )
    list_filter = ("needs_reauth",)
    list_select_related = ("user",)
    search_fields = ("spotify_id", "display_name", "user__username")
    # Tokens are secrets even encrypted: never rendered.
    exclude = ("access_token_encrypted", "refresh_token_encrypted")


@admin.register(Artist)
class ArtistAdmin(ReadOnlyAdmin):
    list_display = ("name", "spotify_id", "genre_list", "fetched_at")
    search_fields = ("name", "=spotify_id")
    date_hierarchy = "fetched_at"

    @admin.display(description="genres")
    def genre_list(self, obj: Artist) -> str:
        return ", ".join(obj.genres or []) or "(none)"


@admin.register(GenrePlaylist)
class GenrePlaylistAdmin(ReadOnlyAdmin):
    list_display = ("genre", "name", "user", "playlist_link", "pending_since", "updated_at")
    list_select_related = ("user",)
    search_fields = ("genre", "name", "user__username", "=playlist_id")

    @admin.display(description="playlist")
    def playlist_link(self, obj: GenrePlaylist) -> str:
        if not obj.url:
            return obj.playlist_id or "-"
        return format_html('<a href="{}" rel="noreferrer">{}</a>', obj.url, obj.playlist_id)


def budget_context() -> dict[str, Any]:
    """The shared budget: configured and learned, per window and per second."""
    try:
        state = ratelimit.budget_state()
    except Exception:  # the page must show the statistics even if the limiter cannot answer
        logger.warning("the Spotify budget could not be read", exc_info=True)
        return {"budget": None}
    return {
        "budget": {
            "configured": state.configured,
            "learned": round(state.learned, 1),
            "window": round(state.window, 1),
            "configured_rate": round(state.configured_rate, 2) if state.configured else None,
            "learned_rate": round(state.learned_rate, 2) if state.configured else None,
            "shared": state.shared,
            "short_limit": state.short_limit,
            "short_window": round(state.short_window, 1),
        }
    }


def spotify_calls_context(*, now: datetime | None = None) -> dict[str, Any]:
    """The numbers of the Spotify calls page, from the per-minute buckets of the last hour."""
    now = now or timezone.now()
    rows = SpotifyCallBucket.objects.filter(minute__gte=now - CALLS_WINDOW)
    totals = rows.aggregate(**{name: Sum(name) for name in COUNTERS}, max_ms=Max("max_ms"))
    totals = {name: value or 0 for name, value in totals.items()}
    endpoints = []
    for row in rows.values("endpoint").annotate(
        calls=Sum("calls"),
        total_ms=Sum("total_ms"),
        max_ms=Max("max_ms"),
        errors=Sum("server_errors") + Sum("network_errors") + Sum("client_errors"),
        limited=Sum("rate_limited") + Sum("quota_exceeded"),
    ):
        row["avg_ms"] = round(row["total_ms"] / row["calls"]) if row["calls"] else 0
        endpoints.append(row)
    endpoints.sort(key=lambda row: (-row["avg_ms"], -row["max_ms"], row["endpoint"]))
    paused = Scan.objects.filter(status=Scan.Status.PAUSED).select_related("user")
    limited = limited_share(now=now, period=CALLS_WINDOW)
    return {
        **budget_context(),
        "limited_percent": round(100 * limited.share, 1),
        "window_minutes": int(CALLS_WINDOW.total_seconds() // 60),
        "totals": totals,
        "average_ms": round(totals["total_ms"] / totals["calls"]) if totals["calls"] else 0,
        "slowest": endpoints[:SLOWEST_ENDPOINTS],
        "paused_scans": list(paused.order_by("resume_at")[:20]),
        "paused_count": paused.count(),
        "minutes": list(
            rows.values("minute")
            .annotate(
                calls=Sum("calls"),
                limited=Sum("rate_limited"),
                quota=Sum("quota_exceeded"),
                errors=Sum("server_errors") + Sum("network_errors"),
            )
            .order_by("-minute")
        ),
    }


@admin.register(SpotifyCallBucket)
class SpotifyCallsAdmin(ReadOnlyAdmin):
    """The admin index links this model; its list is the "Spotify calls (last hour)" page."""

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Spotify calls (last hour)",
            "opts": self.model._meta,
            **spotify_calls_context(),
        }
        return TemplateResponse(request, "admin/genres/spotify_calls.html", context)


from genres import admin_sync  # noqa: E402, F401 - registers the sync health admin
