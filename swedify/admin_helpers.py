"""What both apps' admins share: read-only history admins and the status badge."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

GREY = "#6e7781"
# One colour per meaning, whichever app's status word carries it.
BADGE_COLOURS = {
    "ok": "#1a7f37",
    "up": "#1a7f37",
    "succeeded": "#1a7f37",
    "success": "#1a7f37",
    "running": "#0969da",
    "in_progress": "#0969da",
    "queued": GREY,
    "pending": GREY,
    "skipped": GREY,
    "inactive": GREY,
    "paused": "#9a6700",
    "partial": "#9a6700",
    "failed": "#cf222e",
    "failure": "#cf222e",
    "error": "#cf222e",
    "aborted": "#cf222e",
    "down": "#cf222e",
}


def badge(label: str, status: str | None = None) -> str:
    """``label`` on the colour of ``status`` (the label itself when no status is given)."""
    return format_html(
        '<span style="color:#fff;background:{};padding:1px 6px;border-radius:3px">{}</span>',
        BADGE_COLOURS.get(status or label, GREY),
        label,
    )


class ReadOnlyAdmin(admin.ModelAdmin):
    """History: visible to staff with the view permission, never added, edited or deleted."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
