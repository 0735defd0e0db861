"""The operators' admin pages of the listener side."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from genres.models import Artist, PlaylistJob, Scan, SpotifyAccount, SpotifyCallBucket

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client: Any) -> Any:
    admin = get_user_model().objects.create_superuser("operator", "op@example.com", None)
    client.force_login(admin)
    return client


@pytest.fixture
def listener_user(db: Any) -> Any:
    user = get_user_model().objects.create_user("spotify:alice")
    SpotifyAccount.objects.create(
        user=user,
        spotify_id="alice",
        display_name="Alice",
        access_token_encrypted="ACCESS-SECRET-CIPHERTEXT",
        refresh_token_encrypted="REFRESH-SECRET-CIPHERTEXT",
    )
    return user


def test_scans_list_shows_status_badges_counts_and_errors(operator, listener_user):
    Scan.objects.create(
        user=listener_user,
        status=Scan.Status.FAILED,
        step=Scan.Step.FETCHING_ARTISTS,
        tracks_found=500,
        artists_to_fetch=200,
        error={"error": "Failed to fetch artist data from Spotify", "details": "<b>503</b>"},
        started_at=timezone.now() - timedelta(minutes=3),
        finished_at=timezone.now(),
    )

    page = operator.get("/admin/genres/scan/")

    html = page.content.decode()
    assert page.status_code == 200
    assert "Failed to fetch artist data from Spotify" in html
    assert "&lt;b&gt;503&lt;/b&gt;" in html
    assert "<b>503</b>" not in html
    assert "500 / 0" in html
    assert "3m 00s" in html or "2m 59s" in html


def test_scans_are_history_without_add_change_or_delete(operator, listener_user):
    scan = Scan.objects.create(user=listener_user, sources=["liked"], checkpoint={"a": "<x>"})

    assert operator.get("/admin/genres/scan/add/").status_code == 403
    detail = operator.get(f"/admin/genres/scan/{scan.pk}/change/")
    assert detail.status_code == 200
    assert "&lt;x&gt;" in detail.content.decode()
    assert operator.post(f"/admin/genres/scan/{scan.pk}/delete/").status_code == 403
    assert Scan.objects.filter(pk=scan.pk).exists()


def test_accounts_never_show_tokens(operator, listener_user):
    account = SpotifyAccount.objects.get()

    pages = [
        operator.get("/admin/genres/spotifyaccount/"),
        operator.get(f"/admin/genres/spotifyaccount/{account.pk}/change/"),
    ]

    for page in pages:
        assert page.status_code == 200
        assert "SECRET-CIPHERTEXT" not in page.content.decode()
    assert "Alice" in pages[0].content.decode()


def test_artists_can_be_searched_by_name(operator):
    Artist.objects.create(
        spotify_id="a1", name="Björn Öberg", genres=["swedish pop"], fetched_at=timezone.now()
    )
    Artist.objects.create(spotify_id="a2", name="Other", genres=[], fetched_at=timezone.now())

    page = operator.get("/admin/genres/artist/", {"q": "Björn"}).content.decode()

    assert "swedish pop" in page
    assert "Other" not in page


def test_playlist_jobs_show_outcomes(operator, listener_user):
    PlaylistJob.objects.create(
        user=listener_user,
        status=PlaylistJob.Status.PARTIAL,
        genres=["pop", "rock"],
        results=[
            {"genre": "pop", "status": "created", "tracksAdded": 120},
            {"genre": "rock", "status": "failed", "tracksAdded": 30},
        ],
    )

    page = operator.get("/admin/genres/playlistjob/").content.decode()

    assert "1 / 0 / 0 / 1; 150" in page
    assert "Partial" in page


def test_the_spotify_calls_page_sums_the_last_hour_and_lists_slow_endpoints(
    operator, listener_user
):
    minute = timezone.now().replace(second=0, microsecond=0)
    SpotifyCallBucket.objects.create(
        minute=minute, endpoint="GET /artists/{id}", calls=100, ok=90, rate_limited=7,
        quota_exceeded=3, total_ms=5000, max_ms=400,
    )  # fmt: skip
    SpotifyCallBucket.objects.create(
        minute=minute, endpoint="GET /me/tracks", calls=10, ok=10, total_ms=3000, max_ms=900
    )
    SpotifyCallBucket.objects.create(
        minute=minute - timedelta(hours=2), endpoint="GET /me", calls=999, ok=999
    )
    Scan.objects.create(
        user=listener_user,
        status=Scan.Status.PAUSED,
        resume_at=timezone.now() + timedelta(hours=10),
        error={"details": "429: Too Many Requests (quota exceeded)"},
    )

    index = operator.get("/admin/").content.decode()
    page = operator.get("/admin/genres/spotifycallbucket/")

    assert "Spotify calls (last hour)" in index
    assert page.status_code == 200
    context = page.context
    assert context["totals"]["calls"] == 110
    assert context["totals"]["rate_limited"] == 7
    assert context["totals"]["quota_exceeded"] == 3
    assert context["paused_count"] == 1
    assert [row["endpoint"] for row in context["slowest"]] == [
        "GET /me/tracks",
        "GET /artists/{id}",
    ]
    assert context["slowest"][0]["avg_ms"] == 300
    assert "429: Too Many Requests (quota exceeded)" in page.content.decode()


def test_listeners_and_anonymous_visitors_cannot_open_the_admin(client, listener_user):
    assert client.get("/admin/genres/spotifycallbucket/").status_code == 302
    client.force_login(listener_user)
    assert client.get("/admin/genres/scan/").status_code == 302
