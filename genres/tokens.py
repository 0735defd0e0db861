"""A listener's Spotify tokens, stored encrypted in the database and shared by every worker,
and the Spotify client that acts as the listener with them.

A refresh token Spotify refuses (``invalid_grant``) marks the account ``needs_reauth``; from
then on the API answers 401 and pages send the listener to sign in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from genres import ratelimit, spotify
from genres.crypto import decrypt_token, encrypt_token
from genres.models import SpotifyAccount
from genres.ratelimit import PRIORITY_INTERACTIVE

# A stored access token with less than this left is refreshed before use.
REFRESH_MARGIN = timedelta(seconds=60)


class AccountTokenProvider:
    """Access tokens of one listener, stored in the database and shared by all workers.

    Thread-safe (the Spotify client looks artists up from several threads). A token with less
    than REFRESH_MARGIN left is refreshed under a row lock, so two workers never both spend the
    refresh token; the second finds the first one's new token. ``InvalidGrant`` marks the
    account ``needs_reauth`` and is raised on.
    """

    def __init__(self, *, account_pk: int, accounts: spotify.SpotifyAccounts | None = None) -> None:
        self.account_pk = account_pk
        self._accounts = accounts
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at: datetime | None = None
        self._home = threading.current_thread()

    def _fresh(self) -> bool:
        return bool(
            self._token and self._expires_at and self._expires_at - timezone.now() > REFRESH_MARGIN
        )

    def access_token(self) -> str:
        with self._lock:
            if self._fresh():
                return self._token
            return self._load(force=False)

    def force_refresh(self) -> str:
        with self._lock:
            return self._load(force=True)

    def _load(self, *, force: bool) -> str:
        rejected = self._token if force else None
        try:
            with transaction.atomic():
                account = SpotifyAccount.objects.select_for_update().get(pk=self.account_pk)
                if account.needs_reauth:
                    raise spotify.InvalidGrant("the listener must sign in again", status=400)
                stored = (
                    decrypt_token(account.access_token_encrypted)
                    if account.access_token_encrypted
                    else None
                )
                expires = account.token_expires_at
                still_good = stored and expires and expires - timezone.now() > REFRESH_MARGIN
                # Another worker may have refreshed while we waited for the lock: use theirs.
                if still_good and stored != rejected:
                    self._token, self._expires_at = stored, expires
                    return stored
                if not account.refresh_token_encrypted:
                    raise spotify.InvalidGrant("no refresh token stored", status=400)
                accounts = self._accounts or spotify.SpotifyAccounts()
                tokens = accounts.refresh(
                    refresh_token=decrypt_token(account.refresh_token_encrypted)
                )
                account.access_token_encrypted = encrypt_token(tokens.access_token)
                if tokens.refresh_token:
                    account.refresh_token_encrypted = encrypt_token(tokens.refresh_token)
                account.token_expires_at = tokens.expires_at
                if tokens.scope:
                    account.scopes = tokens.scope
                account.save(
                    update_fields=[
                        "access_token_encrypted",
                        "refresh_token_encrypted",
                        "token_expires_at",
                        "scopes",
                        "updated_at",
                    ]
                )
                self._token, self._expires_at = tokens.access_token, tokens.expires_at
                return tokens.access_token
        except spotify.InvalidGrant:
            # Outside the rolled-back transaction, so the flag sticks.
            SpotifyAccount.objects.filter(pk=self.account_pk).update(needs_reauth=True)
            raise
        finally:
            if threading.current_thread() is not self._home:
                # A lookup thread's connection would otherwise outlive the thread.
                connection.close()


def token_provider_for(user: AbstractBaseUser) -> AccountTokenProvider:
    """The token provider of a listener; raises SpotifyAccount.DoesNotExist without one."""
    account = SpotifyAccount.objects.only("pk").get(user_id=user.pk)
    return AccountTokenProvider(account_pk=account.pk)


class StaticTokens:
    """The fresh token of a sign-in, before any account row exists."""

    def __init__(self, token: str) -> None:
        self._token = token

    def access_token(self) -> str:
        return self._token

    def force_refresh(self) -> str:
        raise spotify.SpotifyAuthError("the new access token was refused", status=401)


def spotify_client_for(
    account: SpotifyAccount,
    *,
    on_call: Callable[[spotify.CallRecord], None] | None = None,
    tokens: spotify.TokenProvider | None = None,
    priority: str = PRIORITY_INTERACTIVE,
    limiter_timeout: float | None = None,
) -> spotify.SpotifyClient:
    """A Spotify client acting as ``account``, through the shared rate limiter.

    The listener is the limiter's party, so however many jobs or threads act for them they
    share the budget as one; ``priority`` says whether someone waits on the work.
    ``limiter_timeout`` (seconds) bounds each wait for a slot before the job pauses.
    """
    return spotify.SpotifyClient(
        tokens=tokens or AccountTokenProvider(account_pk=account.pk),
        # Looked up on the module, so a benchmark that swaps the limiter reaches clients too.
        limiter=ratelimit.rate_limiter(),
        on_call=on_call,
        concurrency=settings.SPOTIFY_CONCURRENCY,
        party=str(account.user_id),
        priority=priority,
        limiter_timeout=spotify.LIMITER_TIMEOUT if limiter_timeout is None else limiter_timeout,
    )
