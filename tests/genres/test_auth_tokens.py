"""The database-backed token provider: refresh before expiry, once for all workers, and a
refused refresh token sends the listener through sign-in again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from genres import spotify, tasks
from genres.crypto import decrypt_token
from genres.models import Scan, SpotifyAccount
from genres.tokens import AccountTokenProvider, token_provider_for
from tests.genres.test_scan_sandbox import scan_to_end, start_scan

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


def test_a_token_about_to_expire_is_refreshed_and_stored_encrypted(listener, spotify_at_sandbox):
    account = SpotifyAccount.objects.get()
    old = decrypt_token(account.access_token_encrypted)
    SpotifyAccount.objects.update(token_expires_at=timezone.now() + timedelta(seconds=30))

    token = AccountTokenProvider(account_pk=account.pk).access_token()

    account.refresh_from_db()
    assert token != old
    assert decrypt_token(account.access_token_encrypted) == token
    assert account.token_expires_at > timezone.now() + timedelta(minutes=50)


def test_a_second_worker_uses_the_token_the_first_one_refreshed(listener, spotify_at_sandbox):
    account = SpotifyAccount.objects.get()
    SpotifyAccount.objects.update(token_expires_at=timezone.now() + timedelta(seconds=30))
    first, second = AccountTokenProvider(account_pk=account.pk), token_provider_for(account.user)
    before = spotify_at_sandbox.stats()["accounts"]

    assert first.access_token() == second.access_token()
    assert spotify_at_sandbox.stats()["accounts"] == before + 1


def test_a_fresh_token_is_served_without_asking_spotify(listener, spotify_at_sandbox):
    provider = token_provider_for(SpotifyAccount.objects.get().user)
    before = spotify_at_sandbox.stats()["accounts"]

    provider.access_token()
    provider.access_token()

    assert spotify_at_sandbox.stats()["accounts"] == before


def test_a_revoked_refresh_token_marks_the_listener_for_sign_in(listener, spotify_at_sandbox):
    spotify_at_sandbox.revoke_refresh_tokens("listener")
    SpotifyAccount.objects.update(token_expires_at=timezone.now() - timedelta(seconds=1))
    provider = token_provider_for(SpotifyAccount.objects.get().user)

    with pytest.raises(spotify.InvalidGrant):
        provider.access_token()

    assert SpotifyAccount.objects.get().needs_reauth is True
    assert listener.get("/session").json() == {"authenticated": False}
    assert listener.get("/api/genres").json() == {"error": "Not authenticated"}
    assert listener.get("/api/genres").status_code == 401


def test_a_scan_whose_refresh_token_was_revoked_fails_asking_to_reconnect(
    listener, spotify_at_sandbox, enqueued
):
    spotify_at_sandbox.revoke_refresh_tokens("listener")
    spotify_at_sandbox.expire_tokens("listener")
    scan_id = start_scan(listener).json()["id"]

    assert tasks.scan_run(scan_id) == Scan.Status.FAILED

    row = Scan.objects.get(pk=scan_id)
    assert row.status == Scan.Status.FAILED
    assert "sign in with Spotify again" in row.error["error"]
    assert SpotifyAccount.objects.get().needs_reauth is True


def test_an_access_token_spotify_expired_early_is_refreshed_mid_scan(
    listener, spotify_at_sandbox, enqueued
):
    spotify_at_sandbox.expire_tokens("listener")

    scan = scan_to_end(listener)

    assert scan["status"] == "succeeded"
    assert spotify_at_sandbox.stats()["by_status"].get("401", 0) >= 1


def test_the_scan_task_fails_a_scan_of_a_listener_who_must_sign_in_again(listener, enqueued):
    SpotifyAccount.objects.update(needs_reauth=True)
    scan = Scan.objects.create(user=SpotifyAccount.objects.get().user, sources=["liked"])

    assert tasks.scan_run(str(scan.pk)) == Scan.Status.FAILED

    scan.refresh_from_db()
    assert scan.error["error"].startswith("Spotify sign-in expired")
