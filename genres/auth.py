"""Listener sign-in with Spotify (Authorization Code + PKCE), logout and /session.

Tokens never leave the server: the refresh token (and the access token) are stored encrypted
in SpotifyAccount (genres.tokens keeps them fresh for every worker).
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth import login, logout
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.middleware.csrf import get_token
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from genres import spotify
from genres.accounts import account_link
from genres.call_stats import SpotifyCallRecorder
from genres.limits import SIGN_IN_STARTS, client_address, limit_exceeded
from genres.selectors import listener_account
from genres.tokens import StaticTokens

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

ERROR_DENIED = "spotify_denied"
ERROR_STATE = "invalid_state"
ERROR_REQUEST = "invalid_request"
ERROR_FAILED = "spotify_auth_failed"
# Spotify signed the listener in but its Web API refuses them (403): in Development Mode an
# app serves only the accounts its owner allow-listed, so only the app's owner can fix it.
ERROR_NOT_ALLOWLISTED = "spotify_not_allowlisted"


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
    """GET /auth/spotify: 302 to Spotify's authorize page with PKCE S256 and a fresh state;
    429 JSON with Retry-After for an address starting too many sign-ins."""
    retry_after = limit_exceeded(SIGN_IN_STARTS, who=client_address(request) or "unknown")
    if retry_after is not None:
        response = JsonResponse(
            {"error": "Too many sign-ins started from your address; try again shortly"},
            status=429,
        )
        response["Retry-After"] = str(retry_after)
        return response
    verifier, challenge = spotify.pkce_pair()
    state = secrets.token_urlsafe(32)
    pending = _pending(request)
    pending[state] = {"verifier": verifier, "at": time.time()}
    newest = sorted(pending.items(), key=lambda item: item[1]["at"])[-MAX_PENDING_SIGN_INS:]
    request.session[SESSION_KEY] = dict(newest)
    if not request.user.is_authenticated:
        # An abandoned sign-in is a session row nobody uses: it lives as long as the sign-in
        # could still complete, not the month of a listener's session.
        request.session.set_expiry(int(SIGN_IN_TTL.total_seconds()))
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
            tokens=StaticTokens(tokens.access_token), on_call=recorder.record
        )
        account = account_link(profile=client.me(), tokens=tokens)
    except spotify.SpotifyForbidden as failure:
        logger.info("Spotify refused the signed-in listener: %s", failure)
        return _fail(ERROR_NOT_ALLOWLISTED)
    except (spotify.SpotifyError, ValueError, IntegrityError) as failure:
        logger.info("Spotify sign-in failed: %s", failure)
        return _fail(ERROR_FAILED)
    finally:
        recorder.flush()
    login(request, account.user, backend="django.contrib.auth.backends.ModelBackend")
    request.session.set_expiry(None)  # a listener's session: SESSION_COOKIE_AGE again
    return HttpResponseRedirect("/")


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    """POST /auth/logout: delete the session server side; 302 to / (also without a session)."""
    logout(request)
    return HttpResponseRedirect("/")


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
