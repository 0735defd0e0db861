"""The only code that talks HTTP to Spotify: the accounts host and the Web API.

Callers get plain dicts and a small set of exceptions that say what to do next:

* ``SpotifyRateLimited`` — the wait is too long to sit through in a worker (a quota 429, or a
  ``Retry-After`` above ``MAX_INLINE_WAIT``): pause the job until now + ``retry_after``.
  Short 429s never reach the caller: the client tells the shared limiter (so every worker
  holds off), waits and goes on.
* ``SpotifyUnavailable`` — 5xx or network errors on a read, after ``GET_ATTEMPTS`` attempts
  with exponential backoff and full jitter.
* ``SpotifyAmbiguousWrite`` — a write failed in a way that may have been applied. Writes are
  never re-sent blindly (adding items does not de-duplicate): the caller reconciles first.
* ``SpotifyAuthError`` (a 401 a token refresh did not cure), ``InvalidGrant`` (sign in again,
  never retry), ``SpotifyForbidden`` (403), ``SpotifyNotFound``, ``SpotifyBadRequest``.

Every attempt goes through the shared rate limiter first and is reported to ``on_call``. A
client sends at most ``concurrency`` requests at once, whichever threads they come from (a
scan's page reads and its artist lookups run side by side within that one bound).
Settings are read when a call is made, so tests (and a sandbox) can point them elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import requests
from django.conf import settings
from django.core.cache import cache
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from genres.pools import PageFeed, Pump
from genres.ratelimit import (
    PRIORITY_INTERACTIVE,
    RateLimiter,
    RateLimiterTimeout,
    rate_limiter,
)

logger = logging.getLogger(__name__)

# Explicit timeouts on every request: a hung connection must not hang a worker.
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0
# A 429 asking for longer than this pauses the job instead of blocking a worker.
MAX_INLINE_WAIT = 60.0
# A request that keeps getting short 429s gives up (the job pauses) instead of spinning.
MAX_SHORT_429S = 5
# When Spotify forgets the Retry-After header on a 429.
DEFAULT_RETRY_AFTER = 1.0
# Reads: attempts in total against 5xx and network errors, and the backoff base in seconds.
GET_ATTEMPTS = 3
DEFAULT_BACKOFF_BASE = 0.5
# How long a rate limiter slot may take before the job is paused instead.
LIMITER_TIMEOUT = 120.0
PAGE_LIMIT = 50
ARTISTS_BATCH_LIMIT = 50
ADD_ITEMS_LIMIT = 100
# "Batch artist lookup is forbidden here" is remembered this long (Development Mode).
BATCH_ARTISTS_CACHE_KEY = "spotify:batch-artists"
BATCH_ARTISTS_MEMORY_SECONDS = 24 * 60 * 60
TOP_ARTISTS_TIME_RANGES = ("long_term", "medium_term", "short_term")
PKCE_VERIFIER_BYTES = 48  # 64 url-safe characters


# --- Errors ---------------------------------------------------------------------------------


class SpotifyError(Exception):
    """A Spotify call failed. ``str()`` reads like ``"429: Too Many Requests"``."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str | None = None,
        endpoint: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason
        self.endpoint = endpoint

    def __str__(self) -> str:
        return f"{self.status}: {self.message}" if self.status else self.message


class SpotifyAuthError(SpotifyError):
    """A 401 that a token refresh did not cure."""


class SpotifyForbidden(SpotifyError):
    """403: the user is not allow-listed, a scope is missing, or the endpoint is removed."""


class SpotifyNotFound(SpotifyError):
    """404."""


class SpotifyRateLimited(SpotifyError):
    """Too long to wait inline: pause the job until now + ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float, quota: bool, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        self.quota = quota


class SpotifyUnavailable(SpotifyError):
    """5xx or network errors on a read after every attempt (``attempts`` says how many)."""

    def __init__(self, message: str, *, attempts: int = 1, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.attempts = attempts


class SpotifyAmbiguousWrite(SpotifyError):
    """A write failed in a way that may have been applied: reconcile, never re-send blindly."""


class InvalidGrant(SpotifyError):
    """The refresh token (or authorization code) is expired or revoked: sign in again."""


class SpotifyBadRequest(SpotifyError):
    """Any other 4xx (and other unexpected answers)."""


# --- Value types ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str | None
    expires_at: datetime
    scope: str


@dataclass(frozen=True)
class CallRecord:
    """One HTTP attempt. ``endpoint`` is the route template; ``status`` 0 = network error."""

    method: str
    endpoint: str
    status: int
    duration_ms: int
    retry_after: float | None
    reason: str | None


@dataclass(frozen=True)
class Page:
    """One page of saved tracks or playlist items; every item has ``item["track"]`` set."""

    items: list[dict]
    total: int
    offset: int
    next: str | None
    limit: int = PAGE_LIMIT

    @property
    def next_offset(self) -> int | None:
        """Where the next page starts, or None after the last page."""
        if not self.items:
            return None
        following = self.offset + len(self.items)
        return following if following < self.total else None


class TokenProvider(Protocol):
    """Where the client gets its bearer token. Must be thread-safe (pages and lookups run in
    threads)."""

    def access_token(self) -> str:
        """A valid access token; the provider refreshes it before it expires."""
        ...

    def force_refresh(self) -> str:
        """A new access token after a 401; may raise InvalidGrant."""
        ...


# --- Shape helpers --------------------------------------------------------------------------


def track_of(item: dict) -> dict | None:
    """The track of a saved-track or playlist item, whether Spotify said "track" or "item"."""
    if not isinstance(item, dict):
        return None
    for key in ("track", "item"):
        value = item.get(key)
        if isinstance(value, dict):
            return value
    return None


def playlist_total(playlist: dict) -> int:
    """The number of items of a playlist object ("items" in 2026, "tracks" before)."""
    for key in ("items", "tracks"):
        value = playlist.get(key) if isinstance(playlist, dict) else None
        if isinstance(value, dict) and isinstance(value.get("total"), int):
            return value["total"]
    return 0


def _normalise_item(item: Any) -> dict:
    if not isinstance(item, dict):
        return {"track": None}
    return {**item, "track": track_of(item)}


def pkce_pair() -> tuple[str, str]:
    """(verifier of 64 url-safe characters, its S256 challenge)."""
    verifier = secrets.token_urlsafe(PKCE_VERIFIER_BYTES)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return verifier, challenge


def _new_session(pool_size: int) -> requests.Session:
    session = requests.Session()
    # No urllib3 retries at all: our own loop decides, and must never sleep through a 429.
    adapter = HTTPAdapter(
        pool_connections=2,
        pool_maxsize=max(pool_size, 1),
        max_retries=Retry(total=0, connect=0, read=False, redirect=0, status=0, other=0),
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _error_details(response: requests.Response) -> tuple[str, str | None]:
    """(message, reason) from a Web API or accounts error body; tolerant of any body."""
    try:
        data = response.json()
    except ValueError:
        data = None
    message, reason = response.reason or f"HTTP {response.status_code}", None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            message = str(error.get("message") or message)
            reason = error.get("reason") if isinstance(error.get("reason"), str) else None
        elif isinstance(error, str):
            # Accounts host: {"error": "invalid_grant", "error_description": "..."}
            reason = error
            message = str(data.get("error_description") or error)
    return message, reason


def _retry_after(response: requests.Response) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        seconds = float(value)
    except ValueError:
        return DEFAULT_RETRY_AFTER
    return seconds if math.isfinite(seconds) and seconds >= 0 else DEFAULT_RETRY_AFTER


def _status_error(status: int, message: str, reason: str | None, endpoint: str) -> SpotifyError:
    kind: type[SpotifyError] = SpotifyBadRequest
    if status == 401:
        kind = SpotifyAuthError
    elif status == 403:
        kind = SpotifyForbidden
    elif status == 404:
        kind = SpotifyNotFound
    return kind(message, status=status, reason=reason, endpoint=endpoint)


def _tokens_from(data: Any, *, endpoint: str, old_refresh: str | None = None) -> TokenSet:
    if not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
        raise SpotifyBadRequest("token answer without access_token", endpoint=endpoint)
    try:
        expires_in = float(data.get("expires_in", 3600))
    except (TypeError, ValueError):
        expires_in = 3600.0
    refresh = data.get("refresh_token")
    return TokenSet(
        access_token=data["access_token"],
        refresh_token=refresh if isinstance(refresh, str) and refresh else old_refresh,
        expires_at=datetime.now(UTC) + timedelta(seconds=expires_in),
        scope=str(data.get("scope") or ""),
    )


def _report(on_call: Callable[[CallRecord], None] | None, record: CallRecord) -> None:
    if on_call is None:
        return
    try:
        on_call(record)
    except Exception:
        # Bookkeeping must never break a Spotify call.
        logger.exception("on_call hook failed for %s", record.endpoint)


# --- Accounts -------------------------------------------------------------------------------


class SpotifyAccounts:
    """The accounts host (``SPOTIFY_ACCOUNTS_URL``): authorize URLs and the token endpoint.

    Token calls do not go through the Web API rate limiter (Spotify counts them apart).
    Code exchanges are never retried (a code is single use); refreshes are retried on
    5xx and network errors like reads.
    """

    def __init__(
        self,
        *,
        session: requests.Session | None = None,
        on_call: Callable[[CallRecord], None] | None = None,
        backoff_base: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._session = session or _new_session(2)
        self._on_call = on_call
        self._backoff_base = DEFAULT_BACKOFF_BASE if backoff_base is None else backoff_base
        self._sleep = sleep

    def authorize_url(
        self, *, state: str, code_challenge: str, scope: str, redirect_uri: str | None = None
    ) -> str:
        query = urlencode(
            {
                "client_id": settings.SPOTIFY_CLIENT_ID,
                "response_type": "code",
                "redirect_uri": redirect_uri or settings.SPOTIFY_REDIRECT_URI,
                "state": state,
                "scope": scope,
                "code_challenge_method": "S256",
                "code_challenge": code_challenge,
            }
        )
        return f"{settings.SPOTIFY_ACCOUNTS_URL}/authorize?{query}"

    def exchange_code(
        self, *, code: str, code_verifier: str, redirect_uri: str | None = None
    ) -> TokenSet:
        """Tokens for an authorization code (Basic client auth plus the PKCE verifier)."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri or settings.SPOTIFY_REDIRECT_URI,
            "client_id": settings.SPOTIFY_CLIENT_ID,
            "code_verifier": code_verifier,
        }
        return _tokens_from(self._token(form, attempts=1), endpoint="POST /api/token")

    def refresh(self, *, refresh_token: str) -> TokenSet:
        """New tokens; keeps ``refresh_token`` when Spotify sends none. Raises InvalidGrant."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        data = self._token(form, attempts=GET_ATTEMPTS)
        return _tokens_from(data, endpoint="POST /api/token", old_refresh=refresh_token)

    def _token(self, form: dict[str, str], *, attempts: int) -> Any:
        endpoint = "POST /api/token"
        url = f"{settings.SPOTIFY_ACCOUNTS_URL}/api/token"
        auth = (settings.SPOTIFY_CLIENT_ID, settings.SPOTIFY_CLIENT_SECRET)
        for attempt in range(1, attempts + 1):
            started = time.monotonic()
            try:
                response = self._session.post(
                    url, data=form, auth=auth, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT)
                )
            except requests.RequestException as error:
                _report(self._on_call, _record("POST", endpoint, 0, started, None, None))
                failure: SpotifyError = SpotifyUnavailable(
                    f"network error: {type(error).__name__}", attempts=attempt, endpoint=endpoint
                )
            else:
                status = response.status_code
                message, reason = _error_details(response) if status >= 400 else ("", None)
                retry_after = _retry_after(response) if status == 429 else None
                _report(
                    self._on_call, _record("POST", endpoint, status, started, retry_after, reason)
                )
                if 200 <= status < 300:
                    try:
                        return response.json()
                    except ValueError:
                        raise SpotifyBadRequest(
                            "token answer is not JSON", status=status, endpoint=endpoint
                        ) from None
                if reason == "invalid_grant":
                    raise InvalidGrant(message, status=status, reason=reason, endpoint=endpoint)
                if status == 429:
                    raise SpotifyRateLimited(
                        message,
                        retry_after=retry_after or DEFAULT_RETRY_AFTER,
                        quota=reason == "QUOTA_EXCEEDED",
                        status=status,
                        reason=reason,
                        endpoint=endpoint,
                    )
                if status < 500:
                    raise _status_error(status, message, reason, endpoint)
                failure = SpotifyUnavailable(
                    message, attempts=attempt, status=status, reason=reason, endpoint=endpoint
                )
            if attempt == attempts:
                raise failure
            self._sleep(random.uniform(0, self._backoff_base * 2 ** (attempt - 1)))
        raise AssertionError("unreachable")  # pragma: no cover


def _record(
    method: str,
    endpoint: str,
    status: int,
    started: float,
    retry_after: float | None,
    reason: str | None,
) -> CallRecord:
    duration_ms = round((time.monotonic() - started) * 1000)
    return CallRecord(method, endpoint, status, duration_ms, retry_after, reason)


# --- Batch artist lookup memory ---------------------------------------------------------------

# API base URL -> monotonic time until which the batch lookup is known to be forbidden.
_batch_forbidden_until: dict[str, float] = {}
_batch_lock = threading.Lock()


def _batch_artists_available(api_url: str) -> bool:
    with _batch_lock:
        if _batch_forbidden_until.get(api_url, 0.0) > time.monotonic():
            return False
    # The cache holds the API URL for which the batch was forbidden (shared by all workers).
    return cache.get(BATCH_ARTISTS_CACHE_KEY) != api_url


def _remember_batch_forbidden(api_url: str) -> None:
    with _batch_lock:
        _batch_forbidden_until[api_url] = time.monotonic() + BATCH_ARTISTS_MEMORY_SECONDS
    cache.set(BATCH_ARTISTS_CACHE_KEY, api_url, BATCH_ARTISTS_MEMORY_SECONDS)


def forget_batch_artists_memory(*, shared: bool = True) -> None:
    """Forget what was learnt about the batch lookup (after an Extended Quota grant; tests).

    ``shared`` False forgets only this process's memory, as a freshly started worker would.
    """
    with _batch_lock:
        _batch_forbidden_until.clear()
    if shared:
        cache.delete(BATCH_ARTISTS_CACHE_KEY)


class ArtistLookups:
    """Artist lookups that go on in worker threads while the caller does other work (see
    ``SpotifyClient.artist_lookups``).

    ``add`` queues ids; in Extended Quota they go out 50 a request as soon as 50 are queued
    (``finish`` sends the last, partial batch), else one request each. ``deliver`` hands
    the answers that have arrived to ``on_answer(id, artist or None)`` on the calling thread,
    so the callback may use the caller's database connection and needs no locking.

    If a lookup fails (SpotifyRateLimited, SpotifyUnavailable, any error) or the callback
    raises, no new lookup starts and the first error is raised by ``deliver``; ``finish``
    first lets the lookups in flight end and delivers them (unless the callback failed).
    Answers delivered before stay delivered. ``close`` drops what has not been delivered.
    """

    def __init__(
        self, client: SpotifyClient, on_answer: Callable[[str, dict | None], None]
    ) -> None:
        self._client = client
        self._on_answer = on_answer
        self._pump = Pump(client.concurrency)
        self._asked: set[str] = set()
        self._waiting: list[str] = []  # ids that do not yet fill a batch
        self._batches: bool | None = None  # decided by the first add
        self._handling = True

    def add(self, ids: Iterable[str]) -> None:
        fresh = [i for i in dict.fromkeys(ids) if i and i not in self._asked]
        if not fresh:
            return
        self._asked.update(fresh)
        if self._batches is None:
            self._batches = _batch_artists_available(settings.SPOTIFY_API_URL)
        if self._batches:
            self._waiting.extend(fresh)
            self._send_batches(partial=False)
        else:
            self._pump.add((i, self._client.artist) for i in fresh)

    def _send_batches(self, *, partial: bool) -> None:
        while self._batches and (
            len(self._waiting) >= ARTISTS_BATCH_LIMIT or (partial and self._waiting)
        ):
            chunk = self._waiting[:ARTISTS_BATCH_LIMIT]
            del self._waiting[:ARTISTS_BATCH_LIMIT]
            if self._client.batch_confirmed:
                self._pump.add([(chunk, self._batch)])
                continue
            # One batch alone first: a 403 on it must not be paid `concurrency` times.
            answer = self._batch(chunk)
            if answer is not None:
                self._client.batch_confirmed = True
                self._answer(chunk, answer)
            else:
                self._to_single(chunk)

    def _batch(self, chunk: list[str]) -> list[tuple[str, dict | None]] | None:
        """One batch request's answers, or None when the batch lookup is forbidden."""
        try:
            return self._client.artists_batch(chunk)
        except SpotifyForbidden:
            return None

    def _to_single(self, chunk: list[str]) -> None:
        if self._batches:
            logger.info("Batch artist lookup is forbidden (Development Mode): one by one")
            self._batches = False
            self._client.batch_confirmed = False
            _remember_batch_forbidden(settings.SPOTIFY_API_URL)
        rest, self._waiting = [*chunk, *self._waiting], []
        self._pump.add((i, self._client.artist) for i in rest)

    def _answer(self, key: Any, result: Any) -> None:
        if isinstance(key, str):
            self._on_answer(key, result)
        elif result is None:
            self._to_single(key)  # a batch forbidden after all (Extended Quota withdrawn)
        else:
            for artist_id, artist in result:
                self._on_answer(artist_id, artist)

    def deliver(self, *, wait: bool = False) -> None:
        """Hands the answers that have arrived to the callback. With ``wait``, also sends the
        partial batch and waits until every lookup has ended. Raises the first error."""
        if wait:
            self._send_batches(partial=True)
        while True:
            for key, future in self._pump.take(wait=wait):
                if self._handling and future.exception() is None:
                    try:
                        self._answer(key, future.result())
                    except Exception as callback_error:  # noqa: BLE001 - raised below
                        self._pump.fail(callback_error)
                        self._handling = False
                self._pump.handled()
            if not wait or self._pump.idle:
                break
        if self._pump.failure is not None:
            raise self._pump.failure

    def finish(self) -> None:
        """Every lookup asked for, answered (see ``deliver``)."""
        self.deliver(wait=True)

    def close(self) -> None:
        """Waits for the lookups in flight and drops their answers; starts no new ones."""
        self._pump.close()


# --- Web API --------------------------------------------------------------------------------


@dataclass
class _Attempts:
    short_429s: int = 0
    failures: int = 0
    refreshed: bool = False
    token: str | None = None
    started: float = 0.0  # when the latest attempt was sent


class SpotifyClient:
    """The Web API for one listener (one TokenProvider). Safe to share between threads."""

    def __init__(
        self,
        *,
        tokens: TokenProvider,
        limiter: RateLimiter | None = None,
        on_call: Callable[[CallRecord], None] | None = None,
        concurrency: int | None = None,
        backoff_base: float | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        party: str | None = None,
        priority: str = PRIORITY_INTERACTIVE,
        limiter_timeout: float = LIMITER_TIMEOUT,
    ) -> None:
        self._tokens = tokens
        self._limiter = limiter if limiter is not None else rate_limiter()
        # The party is the listener (not the job): the limiter shares the budget fairly among
        # parties, interactive work before background work.
        self.party = party
        self.priority = priority
        self.limiter_timeout = limiter_timeout
        self._on_call = on_call
        self.concurrency = max(
            1, int(concurrency if concurrency is not None else settings.SPOTIFY_CONCURRENCY)
        )
        self._backoff_base = DEFAULT_BACKOFF_BASE if backoff_base is None else backoff_base
        self._session = session or _new_session(self.concurrency + 2)
        self._sleep = sleep
        self._refresh_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.concurrency)
        # Set (by ArtistLookups) once a batch artist lookup succeeded: later batches need no
        # lone probe first.
        self.batch_confirmed = False

    # The request loop -----------------------------------------------------------------------

    def _request(
        self,
        method: str,
        route: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict | None = None,
    ) -> Any:
        """The decoded JSON of a 2xx answer, after the retry policy of the module docstring."""
        endpoint = f"{method} {route}"
        url = f"{settings.SPOTIFY_API_URL}{path}"
        state = _Attempts()
        while True:
            token = state.token or self._tokens.access_token()
            state.token = None
            try:
                response = self._send(state, method, url, params, body, token, endpoint)
            except requests.RequestException as error:
                _report(self._on_call, _record(method, endpoint, 0, state.started, None, None))
                self._failed(
                    state,
                    method,
                    endpoint,
                    f"network error: {type(error).__name__}",
                    None,
                    None,
                    error,
                )
                continue
            status = response.status_code
            message, reason = _error_details(response) if status >= 400 else ("", None)
            retry_after = _retry_after(response) if status == 429 else None
            _report(
                self._on_call,
                _record(method, endpoint, status, state.started, retry_after, reason),
            )
            if 200 <= status < 300:
                if status == 204 or not response.content:
                    return {}
                try:
                    return response.json()
                except ValueError:
                    self._failed(state, method, endpoint, "answer is not JSON", status, None, None)
                    continue
            if status == 401:
                if state.refreshed:
                    raise SpotifyAuthError(message, status=status, reason=reason, endpoint=endpoint)
                state.refreshed = True
                state.token = self._refresh_after_401(token)
                continue
            if status == 429:
                self._rate_limited(state, endpoint, message, reason, retry_after or 0.0)
                continue
            if status >= 500:
                self._failed(state, method, endpoint, message, status, reason, None)
                continue
            raise _status_error(status, message, reason, endpoint)

    def _send(
        self,
        state: _Attempts,
        method: str,
        url: str,
        params: dict[str, Any] | None,
        body: dict | None,
        token: str,
        endpoint: str,
    ) -> requests.Response:
        """One HTTP request within this client's concurrency and the shared budget."""
        # Every thread's requests share the slots: a scan's page reads and artist lookups
        # running side by side stay within `concurrency` requests in flight together.
        with self._slots:
            try:
                self._acquire_slot()
            except RateLimiterTimeout as error:
                # The shared budget is exhausted for longer than we wait: pause like a long 429
                # would, as long as the limiter expects this party to wait.
                raise SpotifyRateLimited(
                    str(error),
                    retry_after=MAX_INLINE_WAIT if error.wait is None else error.wait,
                    quota=False,
                    reason="LIMITER_TIMEOUT",
                    endpoint=endpoint,
                ) from error
            state.started = time.monotonic()
            return self._session.request(
                method,
                url,
                params=params,
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                allow_redirects=False,
            )

    def _acquire_slot(self) -> None:
        if self.party is None and self.priority == PRIORITY_INTERACTIVE:
            # The limiter's defaults: a limiter written before parties existed still works.
            self._limiter.acquire(self.limiter_timeout)
        else:
            self._limiter.acquire(self.limiter_timeout, party=self.party, priority=self.priority)

    def _refresh_after_401(self, rejected: str) -> str:
        # Threads that got a 401 for the same token refresh it once between them.
        with self._refresh_lock:
            current = self._tokens.access_token()
            if current != rejected:
                return current
            return self._tokens.force_refresh()

    def _rate_limited(
        self, state: _Attempts, endpoint: str, message: str, reason: str | None, retry_after: float
    ) -> None:
        quota = reason == "QUOTA_EXCEEDED"
        if not quota:
            # Every worker holds off through the shared limiter, this one included, and the
            # shared budget learns from it: a long Retry-After (Spotify's answer to a client
            # that keeps hammering) says the budget is too high just as a short one does. A
            # quota 429 is about one endpoint group's daily quota, not the window.
            self._limiter.penalize(retry_after)
        # A job's client waits for the budget only briefly (`limiter_timeout`), and it waits
        # out a 429 no longer either: the job hands its worker back and resumes at resumeAt.
        if quota or retry_after > min(MAX_INLINE_WAIT, self.limiter_timeout):
            raise SpotifyRateLimited(
                message,
                retry_after=retry_after,
                quota=quota,
                status=429,
                reason=reason,
                endpoint=endpoint,
            )
        state.short_429s += 1
        if state.short_429s >= MAX_SHORT_429S:
            raise SpotifyRateLimited(
                f"{message} ({state.short_429s} times in a row)",
                retry_after=retry_after,
                quota=False,
                status=429,
                reason=reason,
                endpoint=endpoint,
            )
        # Waiting here as well keeps this request's promise even with a limiter that ignores
        # penalties (a test double); with the shared one the hold has passed by then anyway.
        self._sleep(retry_after)

    def _failed(
        self,
        state: _Attempts,
        method: str,
        endpoint: str,
        message: str,
        status: int | None,
        reason: str | None,
        cause: BaseException | None,
    ) -> None:
        """A 5xx, a network error or an unreadable 2xx: retry a read, never a write."""
        if method != "GET":
            raise SpotifyAmbiguousWrite(
                f"{message} (the write may have been applied)",
                status=status,
                reason=reason,
                endpoint=endpoint,
            ) from cause
        state.failures += 1
        if state.failures >= GET_ATTEMPTS:
            raise SpotifyUnavailable(
                f"{message} (after {state.failures} attempts)",
                attempts=state.failures,
                status=status,
                reason=reason,
                endpoint=endpoint,
            ) from cause
        # Full jitter: a random wait up to base * 2^(n-1), so retries of many workers spread.
        self._sleep(random.uniform(0, self._backoff_base * 2 ** (state.failures - 1)))

    def _get(self, route: str, path: str, **params: Any) -> Any:
        return self._request("GET", route, path, params=params or None)

    # Endpoints --------------------------------------------------------------------------------

    def me(self) -> dict:
        return self._get("/me", "/me")

    def liked_page(self, *, offset: int, limit: int = PAGE_LIMIT) -> Page:
        """One page of saved tracks, newest first."""
        _check_page(offset, limit)
        data = self._get("/me/tracks", "/me/tracks", offset=offset, limit=limit)
        return _page(data, "/me/tracks", offset, limit)

    def playlist_items_page(
        self, playlist_id: str, *, offset: int, limit: int = PAGE_LIMIT
    ) -> Page:
        _check_page(offset, limit)
        path = f"/playlists/{_segment(playlist_id)}/items"
        data = self._get("/playlists/{id}/items", path, offset=offset, limit=limit)
        return _page(data, path, offset, limit)

    def artist(self, artist_id: str) -> dict | None:
        """A full artist, or None when Spotify does not know the id."""
        try:
            return self._get("/artists/{id}", f"/artists/{_segment(artist_id)}")
        except SpotifyNotFound:
            return None

    def artists(
        self,
        ids: Sequence[str],
        *,
        on_artist: Callable[[dict], None] | None = None,
        on_missing: Callable[[str], None] | None = None,
    ) -> dict[str, dict | None]:
        """Full artists by id (None for unknown ids); duplicates and empty ids are ignored.

        Uses the batch lookup (50 ids a request, ``concurrency`` requests at a time) where the
        app may (Extended Quota). A 403 on it means Development Mode: remembered for a day per
        process and in the shared cache, and every artist is then fetched on its own,
        ``concurrency`` at a time.

        ``on_artist`` is called for each artist found as soon as it arrives, and
        ``on_missing`` with each id Spotify does not know, always on the calling thread.
        Errors as ``ArtistLookups.finish``: the first is raised after the lookups in flight
        ended; artists delivered before stay delivered.
        """
        results: dict[str, dict | None] = {}

        def answer(artist_id: str, artist: dict | None) -> None:
            results[artist_id] = artist
            if artist is None:
                if on_missing is not None:
                    on_missing(artist_id)
            elif on_artist is not None:
                on_artist(artist)

        with self.artist_lookups(answer) as lookups:
            lookups.add(ids)
            lookups.finish()
        return results

    @contextmanager
    def artist_lookups(
        self, on_answer: Callable[[str, dict | None], None]
    ) -> Iterator[ArtistLookups]:
        """Lookups that run while the caller goes on (``ArtistLookups``); closed on exit."""
        lookups = ArtistLookups(self, on_answer)
        try:
            yield lookups
        finally:
            lookups.close()

    def artists_batch(self, chunk: list[str]) -> list[tuple[str, dict | None]]:
        """(id, artist or None) for each id of one batch request, in request order."""
        data = self._get("/artists", "/artists", ids=",".join(chunk))
        found = data.get("artists") if isinstance(data, dict) else None
        if not isinstance(found, list):
            found = []
        by_id = {a["id"]: a for a in found if isinstance(a, dict) and a.get("id")}
        answer: list[tuple[str, dict | None]] = []
        for position, artist_id in enumerate(chunk):
            artist = by_id.get(artist_id)
            if artist is None and position < len(found) and isinstance(found[position], dict):
                artist = found[position]  # a relinked id: Spotify answers in request order
            answer.append((artist_id, artist))
        return answer

    def pages_in_order(
        self, fetch: Callable[[int], Page], *, offset: int = 0
    ) -> Iterator[list[Page]]:
        """Every page from ``offset`` to the end, in order, fetched ``concurrency`` at a time.

        The first page is fetched alone: its ``total`` gives every other offset. Then up to
        ``concurrency`` pages are in flight (a finished fetch starts the next one at once,
        while the caller stores what it has), never further ahead than
        ``pools.AHEAD_FACTOR * concurrency`` pages past the first one not yet handed over, so
        memory stays bounded however large the library. Each yield is the run of consecutive pages
        that has arrived (one or more), so a caller may store them in one transaction. The
        read ends as a serial one does: after a page without items or ``next``, or at
        Spotify's total as the latest page handed over says it. A short page realigns the
        offsets that follow it.

        ``fetch`` runs in worker threads (it must not use the database). If one fails, no
        new fetch starts, the pages before the failed one are still handed over, then the
        first error in page order is raised. Closing the iterator early waits for the
        fetches in flight and drops them.
        """
        first = fetch(offset)
        yield [first]
        following = offset + len(first.items)
        if _last_page(first, following):
            return
        feed = PageFeed(
            fetch,
            following,
            first.total,
            max(1, first.limit),
            self.concurrency,
            is_last=_last_page,
        )
        try:
            while True:
                run, finished = feed.next_run()
                yield run
                if finished:
                    return
        finally:
            feed.close()

    def followed_artists(self) -> Iterator[dict]:
        """Followed artists (full objects with genres), 50 a request, cursor paging."""
        after: str | None = None
        while True:
            params: dict[str, Any] = {"type": "artist", "limit": PAGE_LIMIT}
            if after:
                params["after"] = after
            data = self._get("/me/following", "/me/following", **params)
            block = data.get("artists") if isinstance(data, dict) else None
            if not isinstance(block, dict):
                return
            items = [a for a in block.get("items") or [] if isinstance(a, dict)]
            yield from items
            cursors = block.get("cursors") if isinstance(block.get("cursors"), dict) else {}
            next_after = cursors.get("after")
            if not items or not next_after or next_after == after:
                return
            after = next_after

    def top_artists(self, time_ranges: Sequence[str] = TOP_ARTISTS_TIME_RANGES) -> Iterator[dict]:
        """Top artists (full, with genres): one request of 50 per time range, de-duplicated."""
        seen: set[str] = set()
        for time_range in time_ranges:
            data = self._get(
                "/me/top/artists", "/me/top/artists", time_range=time_range, limit=PAGE_LIMIT
            )
            for artist in (data.get("items") if isinstance(data, dict) else None) or []:
                if isinstance(artist, dict) and artist.get("id") not in seen:
                    seen.add(artist.get("id"))
                    yield artist

    def my_playlists(self) -> Iterator[dict]:
        """The listener's playlists (own and followed), 50 a request."""
        offset = 0
        while True:
            data = self._get("/me/playlists", "/me/playlists", offset=offset, limit=PAGE_LIMIT)
            page = _page(data, "/me/playlists", offset, PAGE_LIMIT, normalise=False)
            yield from page.items
            if page.next_offset is None:
                return
            offset = page.next_offset

    def create_playlist(self, *, name: str, description: str = "", public: bool = False) -> dict:
        """POST /me/playlists. A 5xx or network error raises SpotifyAmbiguousWrite."""
        body = {"name": name, "description": description, "public": public}
        return self._request("POST", "/me/playlists", "/me/playlists", body=body)

    def playlist_track_ids(self, playlist_id: str) -> list[str]:
        """Every track id of a playlist in order (local files and gaps skipped)."""
        ids: list[str] = []
        offset: int | None = 0
        while offset is not None:
            page = self.playlist_items_page(playlist_id, offset=offset)
            for item in page.items:
                track = item["track"]
                if track and track.get("id") and not track.get("is_local"):
                    ids.append(track["id"])
            offset = page.next_offset
        return ids

    def add_items(self, playlist_id: str, uris: Sequence[str]) -> str:
        """Append 1 to 100 URIs (ValueError otherwise); returns the snapshot id.

        Spotify does not de-duplicate, so a SpotifyAmbiguousWrite must be reconciled with
        ``playlist_track_ids`` before anything is sent again.
        """
        uris = list(uris)
        if not uris:
            raise ValueError("add_items needs at least one uri")
        if len(uris) > ADD_ITEMS_LIMIT:
            raise ValueError(f"add_items takes at most {ADD_ITEMS_LIMIT} uris, not {len(uris)}")
        path = f"/playlists/{_segment(playlist_id)}/items"
        data = self._request("POST", "/playlists/{id}/items", path, body={"uris": uris})
        snapshot = data.get("snapshot_id") if isinstance(data, dict) else None
        return snapshot if isinstance(snapshot, str) else ""

    def remove_items(self, playlist_id: str, uris: Sequence[str]) -> str:
        """Take every occurrence of each URI out of a playlist, ``REMOVE_ITEMS_LIMIT`` URIs a
        request; returns the last snapshot id ("" when there was nothing to send).

        A 5xx or network error raises SpotifyAmbiguousWrite, and the batches before the failed
        one stay applied. Removing is idempotent (a URI that is no longer there is not an
        error), so unlike ``add_items`` the caller may simply send the same URIs again.
        """
        # Each URI once: a removal takes every occurrence, so a repeat only costs a request.
        unique = list(dict.fromkeys(uris))
        path = f"/playlists/{_segment(playlist_id)}/items"
        snapshot = ""
        for start in range(0, len(unique), REMOVE_ITEMS_LIMIT):
            batch = unique[start : start + REMOVE_ITEMS_LIMIT]
            body = {"items": [{"uri": uri} for uri in batch]}
            data = self._request("DELETE", "/playlists/{id}/items", path, body=body)
            answered = data.get("snapshot_id") if isinstance(data, dict) else None
            snapshot = answered if isinstance(answered, str) else snapshot
        return snapshot


# Spotify's DELETE /playlists/{id}/items takes at most 100 items a request.
REMOVE_ITEMS_LIMIT = 100


def _segment(value: str) -> str:
    # An id from a client ("playlist:<id>") must never change the path it is put into.
    if not isinstance(value, str) or not value:
        raise ValueError("a Spotify id must be a non-empty string")
    return quote(value, safe="")


def _last_page(page: Page, following: int) -> bool:
    """Whether a read ends after ``page`` (``following`` is the offset after it)."""
    return not page.items or page.next is None or following >= page.total


def _check_page(offset: int, limit: int) -> None:
    if not 1 <= limit <= PAGE_LIMIT:
        raise ValueError(f"limit must be from 1 to {PAGE_LIMIT}")
    if offset < 0:
        raise ValueError("offset must not be negative")


def _page(data: Any, path: str, offset: int, limit: int, *, normalise: bool = True) -> Page:
    if not isinstance(data, dict):
        data = {}
    raw = data.get("items") if isinstance(data.get("items"), list) else []
    items = [_normalise_item(item) for item in raw] if normalise else list(raw)
    total = data.get("total") if isinstance(data.get("total"), int) else offset + len(items)
    following = offset + len(items)
    spotify_next = data.get("next")
    if isinstance(spotify_next, str) and spotify_next.startswith(settings.SPOTIFY_API_URL):
        next_url: str | None = spotify_next
    elif items and following < total:
        # Not a URL of the configured API (or none at all): never follow it, compute it.
        query = urlencode({"offset": following, "limit": limit})
        next_url = f"{settings.SPOTIFY_API_URL}{path}?{query}"
    else:
        next_url = None
    return Page(items=items, total=total, offset=offset, next=next_url, limit=limit)
