"""Expired sessions are deleted on the beat schedule."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.utils import timezone

from swedify.tasks import sessions_clear

pytestmark = pytest.mark.django_db


def test_expired_sessions_are_deleted_and_live_ones_kept() -> None:
    now = timezone.now()
    Session.objects.create(session_key="e" * 32, session_data="", expire_date=now - timedelta(1))
    Session.objects.create(session_key="l" * 32, session_data="", expire_date=now + timedelta(1))

    assert sessions_clear() == 1
    assert list(Session.objects.values_list("session_key", flat=True)) == ["l" * 32]


def test_the_beat_schedule_runs_it() -> None:
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    assert "swedify.tasks.sessions_clear" in tasks
