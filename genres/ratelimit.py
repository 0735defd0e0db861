"""One adaptive, fair rate limiter for every Spotify request of every worker.

All listeners share one Spotify app, and Spotify counts the app's requests in a rolling window
(30 s) whose real size it does not publish (Development Mode gets less). So every process
shares one budget: in Redis when ``REDIS_URL`` is set, else in this process
(``genres.ratelimit_redis`` and ``genres.ratelimit_local`` implement the same rules).

**The window.** At most ``budget`` requests in any ``window`` seconds, where ``budget`` starts
at ``SPOTIFY_RATE_LIMIT`` and is then learned (below). Each window is widened by
``WINDOW_MARGIN_SECONDS``: we stamp a request when it leaves, Spotify when it arrives.

**Pacing (smoothing).** By default requests are spaced evenly at up to ``PACE_FACTOR`` (3)
times the budget's average rate: a window's budget is spent over at least a third of the
window, never two requests at the same instant. ``SPOTIFY_RATE_SMOOTHING`` says when:
``always`` (the default), ``after-429`` (for ``SMOOTHING_SECONDS`` after any 429 and while
the learned budget is below the configured one) or ``never``. Pacing from the start is the
default because the real window is unknown: a burst of the whole budget meets a smaller real
window with every worker's requests in flight at once, and each of them is answered 429
before the first 429 can stop the others; paced, an overstep costs a request or two. And a
window spent in a third of its length leaves room for a listener who starts later. (An
explicit ``burst`` keeps the older rule: at most ``burst`` requests in any
``window * burst / budget`` seconds.)

**Retry-After.** ``penalize(retry_after)`` after a 429 makes every worker hold off until then,
so one worker's 429 does not become every worker's 429. It is always honoured.

**The adaptive budget (AIMD).** A 429 means Spotify's real limit is below our budget.
* Decrease, quick: the budget becomes ``min(0.85 * budget, n - 1)``, where ``n`` is how many
  requests our window held when the rejected request left (Spotify admitted fewer than that,
  so a configured budget far above the real one is corrected in one step), but never below
  half the budget (a lone spurious 429 cannot collapse it) nor below 5 % of the configured
  one. A 429 after a calm window with our window full to the budget is a probe that
  overstepped: the budget steps back to just under what the window held, not by 15 %.
  All the 429s of one congestion event count once: a 429 for a request that was let
  through before the last decrease was sent at the old rate and changes nothing (every
  limiter remembers, per thread, when it let that thread's latest request through).
* Increase, slow: each full window in which we used at least 90 % of the learned budget
  adds 1 % of the configured budget (at least one request), up to the configured budget.
  Idle windows earn nothing, so a quiet hour does not forget what was learned; a budget no
  429 or increase touched for a day is forgotten.
* A shorter real window (Development Mode's 15 per 10 s, say) is learned from the first 429's
  Retry-After: until then everything we sent was admitted, so our oldest request in the
  window is Spotify's oldest too, and it leaves Spotify's window at now + Retry-After. A
  window so found below 80 % of ours becomes a second rolling window (what it held, less
  one, per that many seconds), lowered by one at each later congestion event and raised by
  one after each window of ours in which it was used to the full.
Against a real window of R per 30 s the budget settles at about R, a probe oversteps by one
request every few windows and steps back; against a shorter real window the second window
holds the requests to its own size.
The learned budget lives in Redis (``:learned``) so every worker, and any new one, uses it.
``rate()`` reports it as requests per second, ``configured_rate()`` the configured one.

**Fair sharing.** Requests belong to a party (the listener: ``spotify_client_for`` passes the
user id; ``None`` is an unnamed party of its own) and a priority. When a slot frees, it goes
to the party whose turn it is among those waiting for it right now: round-robin, the party
served longest ago first (a party that has just started waiting queues behind those already
waiting). A party with eight threads or three jobs is still one party, so it gets one turn
per round like any other; a party alone gets every slot (work-conserving). Interactive work
(a scan or playlist job a listener waits on) goes first: a background party (auto-sync) is
served when no interactive party waits, and otherwise one slot in ``BACKGROUND_EVERY`` (10),
so background work is slowed, never starved. Waiting parties say when they will ask again
and lapse ``WAITER_GRACE_SECONDS`` after that, so a crashed worker holds up no one. A
``RateLimiterTimeout`` carries ``wait``, an estimate of when this party could get a slot.

A Redis outage never blocks a scan: the Redis limiter logs, falls back to an in-process
limiter with the same rules (starting from the last budget learned in Redis), and tries Redis
again after ``REDIS_RETRY_SECONDS``.
"""

from __future__ import annotations

import threading

from django.conf import settings

from genres.ratelimit_core import (
    BACKGROUND_EVERY,
    BURST_FRACTION,
    DEFAULT_ACQUIRE_TIMEOUT,
    PRIORITIES,
    PRIORITY_BACKGROUND,
    PRIORITY_INTERACTIVE,
    SMOOTH_AFTER_429,
    SMOOTH_ALWAYS,
    SMOOTH_MODES,
    SMOOTH_NEVER,
    SMOOTHING_SECONDS,
    WAKE_JITTER_SECONDS,
    WINDOW_MARGIN_SECONDS,
    WINDOW_SECONDS,
    BudgetState,
    RateLimiter,
    RateLimiterTimeout,
    default_burst,
)
from genres.ratelimit_local import LocalRateLimiter
from genres.ratelimit_redis import (
    REDIS_KEY_PREFIX,
    REDIS_RETRY_SECONDS,
    REDIS_SOCKET_TIMEOUT,
    RedisRateLimiter,
)

__all__ = [
    "BACKGROUND_EVERY",
    "BURST_FRACTION",
    "DEFAULT_ACQUIRE_TIMEOUT",
    "PRIORITIES",
    "PRIORITY_BACKGROUND",
    "PRIORITY_INTERACTIVE",
    "REDIS_KEY_PREFIX",
    "REDIS_RETRY_SECONDS",
    "REDIS_SOCKET_TIMEOUT",
    "SMOOTHING_SECONDS",
    "SMOOTH_AFTER_429",
    "SMOOTH_ALWAYS",
    "SMOOTH_MODES",
    "SMOOTH_NEVER",
    "WAKE_JITTER_SECONDS",
    "WINDOW_MARGIN_SECONDS",
    "WINDOW_SECONDS",
    "BudgetState",
    "LocalRateLimiter",
    "RateLimiter",
    "RateLimiterTimeout",
    "RedisRateLimiter",
    "budget_state",
    "default_burst",
    "rate_limiter",
    "rate_limiters_forget",
]

_limiters: dict[tuple[int, str, str], LocalRateLimiter | RedisRateLimiter] = {}
_limiters_lock = threading.Lock()


def rate_limiter() -> LocalRateLimiter | RedisRateLimiter:
    """The process-wide limiter for the configured budget and backend (settings read now)."""
    budget = int(settings.SPOTIFY_RATE_LIMIT)
    url = getattr(settings, "REDIS_URL", "") or ""
    smooth = getattr(settings, "SPOTIFY_RATE_SMOOTHING", SMOOTH_ALWAYS)
    key = (budget, url, smooth)
    with _limiters_lock:
        limiter = _limiters.get(key)
        if limiter is None:
            if url:
                limiter = RedisRateLimiter(budget, url=url, smooth=smooth)
            else:
                limiter = LocalRateLimiter(budget, smooth=smooth)
            _limiters[key] = limiter
        return limiter


def rate_limiters_forget() -> None:
    """Drops the process-wide limiters, so the next ``rate_limiter()`` starts afresh (from
    Redis's learned budget when there is one). For tests: one test's 429s must not slow the next."""
    with _limiters_lock:
        _limiters.clear()


def budget_state() -> BudgetState:
    """The configured and the learned budget of the shared limiter (for the admin)."""
    return rate_limiter().state()
