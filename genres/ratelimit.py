"""One rate limiter for every Spotify request of every worker.

Spotify counts requests per app in a rolling 30-second window and answers 429 beyond it, so
all processes share one budget (``SPOTIFY_RATE_LIMIT`` requests per 30 s): in Redis when
``REDIS_URL`` is set, else in this process. Two rules are enforced together:

* the rolling window: at most ``limit`` requests in any ``window`` seconds;
* a burst cap (smoothing): at most ``burst`` requests in any ``window * burst / limit``
  seconds (a tenth of the budget by default). The long-run rate is the same
  ``limit / window``, so a long scan loses little, but a cold start no longer fires the whole
  budget in the first seconds.

When the cap applies is a judgement call (``smooth``). Spotify documents only the rolling
window, and bounded concurrency already spreads a cold start over seconds, so by default
(``SMOOTH_AFTER_429``) the cap switches on only once Spotify has shown that it is provoked:
for ``SMOOTHING_SECONDS`` after any 429 (``penalize``), for every worker. Until then a scan
gets the full documented budget, which is what makes it fastest. ``SMOOTH_ALWAYS`` and
``SMOOTH_NEVER`` fix the choice.

Each window is widened by ``WINDOW_MARGIN_SECONDS``: we stamp a request when it leaves, Spotify
when it arrives, and network jitter must not make two windows that fit here overlap there.

After a 429, ``penalize(retry_after)`` makes every worker hold off until then (a "hold until"
time beside the window), so one worker's 429 does not become every worker's 429.

A Redis outage never blocks a scan: the Redis limiter logs, falls back to an in-process
limiter with the same budget, and tries Redis again after ``REDIS_RETRY_SECONDS``.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Protocol

from django.conf import settings

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 30.0
# Absorbs the difference between our send time and Spotify's arrival time (jitter).
WINDOW_MARGIN_SECONDS = 0.5
# Default burst cap as a share of the window's budget (see the module docstring).
BURST_FRACTION = 0.1
SMOOTH_ALWAYS = "always"
SMOOTH_AFTER_429 = "after-429"
SMOOTH_NEVER = "never"
SMOOTH_MODES = (SMOOTH_ALWAYS, SMOOTH_AFTER_429, SMOOTH_NEVER)
# How long the burst cap stays on after a 429 in SMOOTH_AFTER_429 mode.
SMOOTHING_SECONDS = 600.0
DEFAULT_ACQUIRE_TIMEOUT = 120.0
# Redis calls of the limiter must fail fast: a scan waits on them for every request.
REDIS_SOCKET_TIMEOUT = 0.25
# After a Redis failure the local fallback is used this long before Redis is tried again.
REDIS_RETRY_SECONDS = 15.0
REDIS_KEY_PREFIX = "swedify:spotify-ratelimit"
# Spreads the wake-ups of workers that wait for the same free slot.
WAKE_JITTER_SECONDS = 0.005


# Interactive work (a scan or playlist job a listener waits on) goes before background work.
PRIORITY_INTERACTIVE = "interactive"
PRIORITY_BACKGROUND = "background"
PRIORITIES = (PRIORITY_INTERACTIVE, PRIORITY_BACKGROUND)


class RateLimiterTimeout(Exception):
    """No slot within the timeout (the budget is exhausted for longer than the caller waits).

    ``wait`` estimates the seconds until this party could get a slot (None if unknown), so a
    job can pause that long instead of polling.
    """

    def __init__(self, message: str, *, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


class RateLimiter(Protocol):
    def acquire(
        self,
        timeout: float = DEFAULT_ACQUIRE_TIMEOUT,
        *,
        party: str | None = None,
        priority: str = PRIORITY_INTERACTIVE,
    ) -> None:
        """Block until one request of ``party`` may be sent; raises RateLimiterTimeout."""
        ...

    def penalize(self, retry_after: float) -> None:
        """After a 429: nobody sends until now + retry_after."""
        ...

    def rate(self) -> float:
        """The requests per second allowed now (the learned budget over the window)."""
        ...

    def configured_rate(self) -> float:
        """The requests per second ``SPOTIFY_RATE_LIMIT`` allows."""
        ...


def default_burst(limit: int) -> int:
    return max(1, math.ceil(limit * BURST_FRACTION)) if limit > 0 else 0


class LocalRateLimiter:
    """Rolling window plus burst cap in this process; thread-safe.

    ``limit`` 0 means unlimited (holds from ``penalize`` still apply). ``burst`` None takes
    the default share, 0 turns the cap off; ``smooth`` says when it applies (module
    docstring). ``clock`` and ``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        limit: int,
        window: float = WINDOW_SECONDS,
        *,
        burst: int | None = None,
        smooth: str = SMOOTH_AFTER_429,
        margin: float = WINDOW_MARGIN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit < 0:
            raise ValueError("limit must be 0 (unlimited) or positive")
        if smooth not in SMOOTH_MODES:
            raise ValueError(f"smooth must be one of {', '.join(SMOOTH_MODES)}")
        self.limit = limit
        self.smooth = smooth
        self.window = window + margin
        self.burst = default_burst(limit) if burst is None else burst
        if self.burst >= limit:
            self.burst = 0
        self.burst_window = self.window * self.burst / limit if self.burst else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sent: deque[float] = deque()
        self._hold_until = 0.0
        self._smooth_until = 0.0

    def smoothing(self) -> bool:
        """Whether the burst cap applies now."""
        if not self.burst or self.smooth == SMOOTH_NEVER:
            return False
        return self.smooth == SMOOTH_ALWAYS or self._clock() < self._smooth_until

    def _wait_locked(self, now: float) -> float:
        if self._hold_until > now:
            return self._hold_until - now
        if not self.limit:
            return 0.0
        while self._sent and self._sent[0] <= now - self.window:
            self._sent.popleft()
        wait = 0.0
        if len(self._sent) >= self.limit:
            wait = self._sent[-self.limit] + self.window - now
        if self.smoothing() and len(self._sent) >= self.burst:
            wait = max(wait, self._sent[-self.burst] + self.burst_window - now)
        return wait

    def try_acquire(self) -> float:
        """Take a slot and return 0, or return the seconds to wait before trying again."""
        with self._lock:
            now = self._clock()
            wait = self._wait_locked(now)
            if wait <= 0:
                if self.limit:
                    self._sent.append(now)
                return 0.0
            return wait

    def rate(self) -> float:
        """Requests per second allowed now."""
        return self.limit / self.window if self.limit else math.inf

    def configured_rate(self) -> float:
        return self.limit / self.window if self.limit else math.inf

    def acquire(
        self,
        timeout: float = DEFAULT_ACQUIRE_TIMEOUT,
        *,
        party: str | None = None,
        priority: str = PRIORITY_INTERACTIVE,
    ) -> None:
        deadline = self._clock() + timeout
        while True:
            wait = self.try_acquire()
            if wait <= 0:
                return
            if self._clock() + wait > deadline:
                raise RateLimiterTimeout(
                    f"no Spotify request slot within {timeout:g} s (next in {wait:.1f} s)",
                    wait=wait,
                )
            self._sleep(wait + random.uniform(0, WAKE_JITTER_SECONDS))

    def penalize(self, retry_after: float) -> None:
        with self._lock:
            now = self._clock()
            self._hold_until = max(self._hold_until, now + max(0.0, retry_after))
            self._smooth_until = now + SMOOTHING_SECONDS


# Both scripts read Redis's own clock, so processes on different machines share one time.
_ACQUIRE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local hold = tonumber(redis.call('GET', KEYS[2]) or '0')
if hold > now then return math.ceil(hold - now) end
local limit = tonumber(ARGV[1])
if limit <= 0 then return 0 end
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - window))
local count = redis.call('ZCARD', KEYS[1])
local wait = 0
if count >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
  wait = tonumber(oldest[2]) + window - now
end
local burst = tonumber(ARGV[3])
local smooth = ARGV[6] == 'always'
if ARGV[6] == 'after-429' then smooth = redis.call('EXISTS', KEYS[3]) == 1 end
if smooth and burst > 0 and count >= burst then
  local first = redis.call('ZRANGE', KEYS[1], count - burst, count - burst, 'WITHSCORES')
  local w = tonumber(first[2]) + tonumber(ARGV[4]) - now
  if w > wait then wait = w end
end
if wait > 0 then return math.ceil(wait) end
redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[5])
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
return 0
"""

_PENALIZE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local hold_until = now + tonumber(ARGV[1])
local hold = tonumber(redis.call('GET', KEYS[1]) or '0')
if hold_until > hold then
  redis.call('SET', KEYS[1], string.format('%.0f', hold_until),
             'PX', math.ceil(tonumber(ARGV[1]) / 1000) + 1000)
end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return 0
"""


class RedisRateLimiter:
    """The same rules as LocalRateLimiter, kept in Redis so all workers share them.

    The window is a sorted set of send times (one member per request) and the hold a plain
    key; one Lua script checks and takes a slot atomically. On any Redis error it logs once
    per outage and uses a LocalRateLimiter with the same budget until Redis answers again.
    """

    def __init__(
        self,
        limit: int,
        window: float = WINDOW_SECONDS,
        *,
        url: str,
        burst: int | None = None,
        smooth: str = SMOOTH_AFTER_429,
        margin: float = WINDOW_MARGIN_SECONDS,
        key_prefix: str = REDIS_KEY_PREFIX,
        retry_redis_after: float = REDIS_RETRY_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.fallback = LocalRateLimiter(
            limit, window, burst=burst, smooth=smooth, margin=margin, sleep=sleep
        )
        self.limit = limit
        self.smooth = smooth
        self._window_us = int(self.fallback.window * 1_000_000)
        self._burst = self.fallback.burst
        self._burst_window_us = int(self.fallback.burst_window * 1_000_000)
        self._window_key = f"{key_prefix}:window"
        self._hold_key = f"{key_prefix}:hold"
        self._smooth_key = f"{key_prefix}:smooth"
        self._sleep = sleep
        self._retry_redis_after = retry_redis_after
        self._redis_down_until = 0.0
        self._state_lock = threading.Lock()
        self._redis_errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        # No redis-py retries: a failed call falls back at once instead of backing off.
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=REDIS_SOCKET_TIMEOUT,
            socket_timeout=REDIS_SOCKET_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
        )
        self._acquire_script = client.register_script(_ACQUIRE_SCRIPT)
        self._penalize_script = client.register_script(_PENALIZE_SCRIPT)

    @property
    def using_fallback(self) -> bool:
        return time.monotonic() < self._redis_down_until

    def _redis_failed(self, error: BaseException) -> None:
        with self._state_lock:
            first = not self.using_fallback
            self._redis_down_until = time.monotonic() + self._retry_redis_after
        if first:
            logger.warning(
                "Spotify rate limiter: Redis failed (%s); using a per-process limiter for %g s",
                error,
                self._retry_redis_after,
            )

    def rate(self) -> float:
        return self.fallback.rate()

    def configured_rate(self) -> float:
        return self.fallback.configured_rate()

    def acquire(
        self,
        timeout: float = DEFAULT_ACQUIRE_TIMEOUT,
        *,
        party: str | None = None,
        priority: str = PRIORITY_INTERACTIVE,
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if self.using_fallback:
                self.fallback.acquire(max(0.0, remaining))
                return
            try:
                wait_us = int(
                    self._acquire_script(
                        keys=[self._window_key, self._hold_key, self._smooth_key],
                        args=[
                            self.limit,
                            self._window_us,
                            self._burst,
                            self._burst_window_us,
                            uuid.uuid4().hex,
                            self.smooth,
                        ],
                    )
                )
            except self._redis_errors as error:
                self._redis_failed(error)
                continue
            if wait_us <= 0:
                # Keep the fallback's window warm so a switch to it mid-scan starts honest.
                self.fallback.try_acquire()
                return
            wait = wait_us / 1_000_000
            if wait > remaining:
                raise RateLimiterTimeout(
                    f"no Spotify request slot within {timeout:g} s (next in {wait:.1f} s)",
                    wait=wait,
                )
            self._sleep(wait + random.uniform(0, WAKE_JITTER_SECONDS))

    def penalize(self, retry_after: float) -> None:
        # Locally too: if Redis fails during the hold, this process still honours it.
        self.fallback.penalize(retry_after)
        if self.using_fallback:
            return
        try:
            self._penalize_script(
                keys=[self._hold_key, self._smooth_key],
                args=[int(max(0.0, retry_after) * 1_000_000), int(SMOOTHING_SECONDS * 1000)],
            )
        except self._redis_errors as error:
            self._redis_failed(error)


_limiters: dict[tuple[int, str], RateLimiter] = {}
_limiters_lock = threading.Lock()


def rate_limiter() -> RateLimiter:
    """The process-wide limiter for the configured budget and backend (settings read now)."""
    budget = int(settings.SPOTIFY_RATE_LIMIT)
    url = getattr(settings, "REDIS_URL", "") or ""
    key = (budget, url)
    with _limiters_lock:
        limiter = _limiters.get(key)
        if limiter is None:
            limiter = RedisRateLimiter(budget, url=url) if url else LocalRateLimiter(budget)
            _limiters[key] = limiter
        return limiter
