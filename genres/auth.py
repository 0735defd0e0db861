"""Listener sign-in with Spotify (Authorization Code + PKCE), logout, /session, and the
database-backed token provider every Spotify client of a listener uses.

Tokens never leave the server: the refresh token (and the access token) are stored encrypted
in SpotifyAccount. A refresh token Spotify refuses (``invalid_grant``) marks the account
``needs_reauth``; from then on the API answers 401 and pages send the listener to sign in.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth import login, logout
from django.db import IntegrityError, connection, transaction
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.middleware.csrf import get_token
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from genres import spotify
from genres.crypto import decrypt_token, encrypt_token
from genres.models import SpotifyAccount
from genres.selectors import listener_account
from genres.services import SpotifyCallRecorder, account_link

logger = logging.getLogger(__name__)

SCOPES = (
    "user-library-read playlist-read-private playlist-modify-private playlist-modify-public "
    "user-follow-read user-top-read"
)
# Sign-in attempts kept per session (several tabs may start one) and how long each is valid
# (Spotify's authorization codes live ten minutes too).
MAX_PENDING_SIGN_INS = 5
SIGN_IN_TTL = timedelta(minutes=10)
SESSION_KEY = "spotify_sign_in"
# Longer than any real code or state; anything longer is malformed input.
MAX_PARAM_LENGTH = 2048
# A stored access token with less than this left is refreshed before use.
REFRESH_MARGIN = timedelta(seconds=60)

ERROR_DENIED = "spotify_denied"
ERROR_STATE = "invalid_state"
ERROR_REQUEST = "invalid_request"
ERROR_FAILED = "spotify_auth_failed"


def _fail(key: str) -> HttpResponseRedirect:
    return HttpResponseRedirect(f"/?{urlencode({'error': key})}")


def _pending(request: HttpRequest) -> dict[str, dict[str, Any]]:
    """The session's unexpired sign-in attempts, by state (malformed entries dropped)."""
    raw = request.session.get(SESSION_KEY)
    oldest = time.time() - SIGN_IN_TTL.total_seconds()
    if not isinstance(raw, dict):
        return {}
    return {
        state: entry
        for state, entry in raw.items()
        if isinstance(entry, dict)
        and isinstance(entry.get("verifier"), str)
        and isinstance(entry.get("at"), int | float)
        and entry["at"] >= oldest
    }


@never_cache
@require_GET
def spotify_start(request: HttpRequest) -> HttpResponse:
    """GET /auth/spotify: 302 to Spotify's authorize page with PKCE S256 and a fresh state."""
    verifier, challenge = spotify.pkce_pair()
    state = secrets.token_urlsafe(32)
    pending = _pending(request)
    pending[state] = {"verifier": verifier, "at": time.time()}
    newest = sorted(pending.items(), key=lambda item: item[1]["at"])[-MAX_PENDING_SIGN_INS:]
    request.session[SESSION_KEY] = dict(newest)
    url = spotify.SpotifyAccounts().authorize_url(
        state=state, code_challenge=challenge, scope=SCOPES
    )
    return HttpResponseRedirect(url)


def _single(request: HttpRequest, name: str) -> str | None:
    """One query value, or None; raises ValueError on repeats, over-long or control chars."""
    values = request.GET.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise ValueError(f"{name} given more than once")
    value = values[0]
    if len(value) > MAX_PARAM_LENGTH or not value.isprintable():
        raise ValueError(f"{name} is malformed")
    return value


@never_cache
@require_GET
def spotify_callback(request: HttpRequest) -> HttpResponse:
    """GET /auth/spotify/callback: exchange the code, link the account, sign in, 302 to /."""
    try:
        code = _single(request, "code")
        state = _single(request, "state")
        error = _single(request, "error")
    except ValueError:
        return _fail(ERROR_REQUEST)
    pending = _pending(request)
    attempt = pending.pop(state, None) if state else None
    if SESSION_KEY in request.session:
        # The state is single use whatever happens next. (A stray callback without a
        # sign-in in progress writes no session at all.)
        request.session[SESSION_KEY] = pending
    if error is not None:
        return _fail(ERROR_DENIED if error == "access_denied" else ERROR_FAILED)
    if not code:
        return _fail(ERROR_REQUEST)
    if attempt is None:
        return _fail(ERROR_STATE)
    # Sign-in calls count on the operators' Spotify calls page like a job's.
    recorder = SpotifyCallRecorder()
    try:
        tokens = spotify.SpotifyAccounts(on_call=recorder.record).exchange_code(
            code=code, code_verifier=attempt["verifier"]
        )
        client = spotify.SpotifyClient(
            tokens=_StaticTokens(tokens.access_token), on_call=recorder.record
        )
        account = account_link(profile=client.me(), tokens=tokens)
    except (spotify.SpotifyError, ValueError, IntegrityError) as failure:
        logger.info("Spotify sign-in failed: %s", failure)
        return _fail(ERROR_FAILED)
    finally:
        recorder.flush()
    login(request, account.user, backend="django.contrib.auth.backends.ModelBackend")
    return HttpResponseRedirect("/")


class _StaticTokens:
    """The fresh token of a sign-in, before any account row exists."""

    def __init__(self, token: str) -> None:
        self._token = token

    def access_token(self) -> str:
        return self._token

    def force_refresh(self) -> str:
        raise spotify.SpotifyAuthError("the new access token was refused", status=401)


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    """POST /auth/logout: delete the session server side; 302 to / (also without a session)."""
    logout(request)
    return HttpResponseRedirect("/")


def logout_not_allowed(request: HttpRequest) -> HttpResponse:
    return HttpResponseNotAllowed(["POST"])


@never_cache
def session_view(request: HttpRequest) -> JsonResponse:
    """GET /session: who is signed in, and the CSRF token the API's writes need."""
    if request.method not in ("GET", "HEAD"):
        response = JsonResponse({"error": "Method not allowed"}, status=405)
        response["Allow"] = "GET, HEAD"
        return response
    account = listener_account(user=request.user)
    if account is None:
        return JsonResponse({"authenticated": False})
    return JsonResponse(
        {
            "authenticated": True,
            "user": {"id": account.spotify_id, "displayName": account.display_name},
            "csrfToken": get_token(request),
        }
    )


# --- Tokens ---------------------------------------------------------------------------------


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
        self._expires_at = None
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


def token_provider_for(user: Any) -> AccountTokenProvider:
    """The token provider of a listener; raises SpotifyAccount.DoesNotExist without one."""
    account = SpotifyAccount.objects.only("pk").get(user_id=user.pk)
    return AccountTokenProvider(account_pk=account.pk)
