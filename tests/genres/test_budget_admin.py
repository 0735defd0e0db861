"""The Spotify calls admin page shows the shared budget: configured, learned, and the 429
share of the last hour."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from genres import ratelimit
from genres.call_stats import limited_share
from genres.models import SpotifyCallBucket


@pytest.fixture
def operator(client: Any, db: Any) -> Any:
    admin = get_user_model().objects.create_superuser("ops", "ops@example.com", None)
    client.force_login(admin)
    return client


@pytest.fixture
def local_budget(settings: Any) -> Any:
    """The process's limiter for 150 per 30 s, without Redis, learned from a 429."""
    settings.REDIS_URL = ""
    settings.SPOTIFY_RATE_LIMIT = 150
    ratelimit._limiters.clear()
    limiter = ratelimit.rate_limiter()
    for _ in range(101):
        limiter.record_send()
    limiter.penalize(0.0)
    yield limiter
    ratelimit._limiters.clear()


def test_the_429_share_counts_window_429s_of_the_last_hour_only(db: Any) -> None:
    now = timezone.now().replace(second=0, microsecond=0)
    SpotifyCallBucket.objects.create(
        minute=now, endpoint="GET /me", calls=80, ok=70, rate_limited=4, quota_exceeded=6
    )
    SpotifyCallBucket.objects.create(minute=now - timedelta(minutes=30), endpoint="GET /me",
                                     calls=20, ok=19, rate_limited=1)  # fmt: skip
    SpotifyCallBucket.objects.create(minute=now - timedelta(hours=2), endpoint="GET /me",
                                     calls=500, rate_limited=500)  # fmt: skip
    share = limited_share(now=now)
    assert (share.calls, share.rate_limited) == (100, 5)
    assert share.share == pytest.approx(0.05)


def test_no_calls_is_a_share_of_zero(db: Any) -> None:
    assert limited_share().share == 0.0


def test_the_calls_page_shows_the_configured_and_the_learned_budget(
    operator: Any, local_budget: Any
) -> None:
    SpotifyCallBucket.objects.create(
        minute=timezone.now().replace(second=0, microsecond=0), endpoint="GET /me",
        calls=40, ok=38, rate_limited=2,
    )  # fmt: skip
    page = operator.get("/admin/genres/spotifycallbucket/")
    assert page.status_code == 200
    budget = page.context["budget"]
    assert budget["configured"] == 150
    assert budget["learned"] == 100.0
    assert budget["learned_rate"] == pytest.approx(100 / 30.5, abs=0.01)
    assert budget["shared"] is False
    assert page.context["limited_percent"] == 5.0
    html = page.content.decode()
    assert "150 per 30.5 s" in html
    assert "100.0 per 30.5 s" in html
    assert "5.0 %" in html


def test_the_calls_page_still_shows_the_statistics_when_the_budget_cannot_be_read(
    operator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> None:
        raise RuntimeError("limiter unavailable")

    monkeypatch.setattr(ratelimit, "budget_state", broken)
    page = operator.get("/admin/genres/spotifycallbucket/")
    assert page.status_code == 200
    assert page.context["budget"] is None
    assert "could not be read" in page.content.decode()
