"""The home page's auto-sync panel reads the listener's schedule through this tag, so the
page's view needs no change to show it (``{% sync_panel request.user as sync %}``)."""

from __future__ import annotations

from typing import Any

from django import template
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from genres.models import GenrePlaylist
from genres.selectors import listener_account
from genres.sync import MAX_INTERVAL_HOURS, MIN_INTERVAL_HOURS, STOPPED_MESSAGES, sync_schedule_for

register = template.Library()


@register.simple_tag
def sync_panel(user: AbstractBaseUser | AnonymousUser | None) -> dict[str, Any] | None:
    """What the panel shows, or None when there is nothing to show (signed out, or a
    listener who must reconnect and whose auto-sync never stopped)."""
    if user is None or not user.is_authenticated:
        return None
    account = listener_account(user=user)
    schedule = sync_schedule_for(user=user)
    stopped = STOPPED_MESSAGES.get(schedule.stopped_reason) if schedule.stopped_reason else None
    if account is None and stopped is None:
        return None
    return {
        "signed_in": account is not None,
        "schedule": schedule,
        "running": schedule.running_since is not None,
        "result": schedule.last_result or None,
        "stopped_message": stopped,
        "has_playlists": GenrePlaylist.objects.filter(user_id=user.pk)
        .exclude(playlist_id="")
        .exists(),
        "min_hours": MIN_INTERVAL_HOURS,
        "max_hours": MAX_INTERVAL_HOURS,
    }
