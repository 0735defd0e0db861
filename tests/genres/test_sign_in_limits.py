"""Sign-in starts: limited per address, and an abandoned sign-in's session expires in minutes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from genres import limits
from genres.limits import SIGN_IN_STARTS
from tests.genres.conftest import sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def frozen_window(monkeypatch) -> None:
    """All requests of a test fall in one limit window, whatever the clock does."""
    monkeypatch.setattr(limits.time, "time", lambda: 1_800_000_010.0)


def test_an_address_over_the_limit_gets_429_json_with_retry_after(frozen_window) -> None:
    answers = [
        Client(REMOTE_ADDR="203.0.113.5").get("/auth/spotify")
        for _ in range(SIGN_IN_STARTS.requests + 1)
    ]

    assert {a.status_code for a in answers[:-1]} == {302}
    refused = answers[-1]
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/json"
    assert "error" in refused.json()
    assert refused["Retry-After"] == "50"
    assert Client(REMOTE_ADDR="203.0.113.6").get("/auth/spotify").status_code == 302


def test_clients_behind_our_proxy_are_counted_apart(frozen_window) -> None:
    for _ in range(SIGN_IN_STARTS.requests + 1):
        Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.1").get("/auth/spotify")

    other = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.2")
    assert other.get("/auth/spotify").status_code == 302


def test_sign_ins_are_not_limited_when_the_cache_is_down(frozen_window, monkeypatch) -> None:
    from django.core.cache import cache

    monkeypatch.setattr(cache, "add", lambda *a, **k: None)
    monkeypatch.setattr(cache, "incr", lambda *a, **k: None)

    answers = [Client().get("/auth/spotify") for _ in range(SIGN_IN_STARTS.requests + 5)]

    assert {a.status_code for a in answers} == {302}


def test_an_unfinished_sign_in_keeps_its_session_minutes_a_finished_one_a_month(
    client: Client, spotify_at_sandbox
) -> None:
    client.get("/auth/spotify")
    pending = Session.objects.get()
    assert pending.expire_date < timezone.now() + timedelta(minutes=11)

    sign_in(client, spotify_at_sandbox, "listener")

    listener = Session.objects.get(session_key=client.cookies["sessionid"].value)
    assert listener.expire_date > timezone.now() + timedelta(days=29)
