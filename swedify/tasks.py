"""Periodic housekeeping of the project itself (the apps' work lives in their own tasks)."""

from __future__ import annotations

from celery import shared_task
from django.contrib.sessions.models import Session
from django.utils import timezone


@shared_task(name="swedify.tasks.sessions_clear")
def sessions_clear() -> int:
    """Deletes expired sessions (what `manage.py clearsessions` does for the database
    backend), so abandoned sign-ins, whose sessions live minutes, do not pile up."""
    deleted, _ = Session.objects.filter(expire_date__lt=timezone.now()).delete()
    return deleted
