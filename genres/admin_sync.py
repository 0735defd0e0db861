"""Sync health across listeners (the operators' view of auto-sync): who has it on, which runs
fail or stopped by themselves, and which are overdue (the beat is not starting them)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from genres.models import SyncSchedule
from swedify.admin_helpers import ReadOnlyAdmin, badge

# A run due longer ago than this and not started means the beat's tick is not running.
OVERDUE_AFTER = timedelta(minutes=30)

HEALTH_COLOURS = {
    "ok": "ok",
    "running": "running",
    "failing": "failed",
    "stopped": "partial",
    "overdue": "failed",
    "off": "inactive",
}


def sync_health(schedule: SyncSchedule, now: Any = None) -> str:
    """One word for a listener's auto-sync: stopped, off, running, overdue, failing or ok."""
    now = now or timezone.now()
    if schedule.stopped_reason:
        return "stopped"
    if not schedule.enabled:
        return "off"
    if schedule.running_since is not None:
        return "running"
    if schedule.next_run_at is not None and schedule.next_run_at < now - OVERDUE_AFTER:
        return "overdue"
    if schedule.failures:
        return "failing"
    return "ok"


class HealthFilter(admin.SimpleListFilter):
    title = "health"
    parameter_name = "health"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in HEALTH_COLOURS]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        now = timezone.now()
        on = Q(enabled=True, stopped_reason="")
        overdue = Q(running_since__isnull=True, next_run_at__lt=now - OVERDUE_AFTER)
        filters = {
            "stopped": ~Q(stopped_reason=""),
            "off": Q(enabled=False, stopped_reason=""),
            "running": on & Q(running_since__isnull=False),
            "overdue": on & overdue,
            "failing": on & Q(running_since__isnull=True, failures__gt=0) & ~overdue,
            "ok": on & Q(running_since__isnull=True, failures=0) & ~overdue,
        }
        chosen = filters.get(self.value() or "")
        return queryset.filter(chosen) if chosen is not None else queryset


def health_summary(now: Any = None) -> dict[str, int]:
    """Counts across listeners for the top of the list."""
    now = now or timezone.now()
    on = Q(enabled=True, stopped_reason="")
    # Aliases differ from the field names (an aggregate may not shadow a field).
    counts = SyncSchedule.objects.aggregate(
        n_enabled=Count("pk", filter=on),
        n_running=Count("pk", filter=Q(running_since__isnull=False)),
        n_failing=Count("pk", filter=on & Q(failures__gt=0)),
        n_stopped=Count("pk", filter=~Q(stopped_reason="")),
        n_overdue=Count(
            "pk",
            filter=on & Q(running_since__isnull=True, next_run_at__lt=now - OVERDUE_AFTER),
        ),
    )
    return {name.removeprefix("n_"): value for name, value in counts.items()}


@admin.register(SyncSchedule)
class SyncScheduleAdmin(ReadOnlyAdmin):
    list_display = (
        "user",
        "health",
        "interval_hours",
        "remove_unliked",
        "last_run_at",
        "last_outcome",
        "next_run_at",
        "failures",
    )
    list_filter = (HealthFilter, "enabled", "stopped_reason", "remove_unliked")
    list_select_related = ("user",)
    search_fields = ("user__username",)
    ordering = ("-failures", "next_run_at")
    exclude = ("baseline",)

    @admin.display(description="health")
    def health(self, obj: SyncSchedule) -> str:
        word = sync_health(obj)
        label = f"stopped: {obj.get_stopped_reason_display()}" if word == "stopped" else word
        return badge(label, HEALTH_COLOURS[word])

    @admin.display(description="last result")
    def last_outcome(self, obj: SyncSchedule) -> str:
        result = obj.last_result or {}
        if not result:
            return "-"
        if result.get("status") == "succeeded":
            return f"+{result.get('tracksAdded', 0)} / -{result.get('tracksRemoved', 0)}"
        return f"failed: {result.get('error') or ''}"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        summary = health_summary()
        title = (
            "Auto-sync: {enabled} on, {running} running, {failing} failing, {overdue} overdue, "
            "{stopped} stopped"
        ).format(**summary)
        return super().changelist_view(request, {**(extra_context or {}), "title": title})
