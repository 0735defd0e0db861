"""The parts of the Spotify rate limiter that both backends share: names, errors, the
protocol and the arithmetic of the adaptive budget. ``genres.ratelimit`` explains the design.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

WINDOW_SECONDS = 30.0
# Absorbs the difference between our send time and Spotify's arrival time (jitter).
WINDOW_MARGIN_SECONDS = 0.5
# An explicit burst cap's old default share of the budget (kept for callers that size one).
BURST_FRACTION = 0.1
# Smoothing by default spaces requests evenly at up to this many times the budget's average
# rate: fast, but never two at the same instant (see genres.ratelimit).
PACE_FACTOR = 3
# A first 429 whose Retry-After shows Spotify's window ends before this share of ours means a
# shorter real window (e.g. 15 per 10 s), learned as a second window.
SHORT_WINDOW_FRACTION = 0.8
SMOOTH_ALWAYS = "always"
SMOOTH_AFTER_429 = "after-429"
SMOOTH_NEVER = "never"
SMOOTH_MODES = (SMOOTH_ALWAYS, SMOOTH_AFTER_429, SMOOTH_NEVER)
# How long the burst cap stays on after a 429 in SMOOTH_AFTER_429 mode.
SMOOTHING_SECONDS = 600.0
DEFAULT_ACQUIRE_TIMEOUT = 120.0
# Spreads the wake-ups of workers that wait for the same free slot.
WAKE_JITTER_SECONDS = 0.005

# Interactive work (a scan or playlist job a listener waits on) goes before background work.
PRIORITY_INTERACTIVE = "interactive"
PRIORITY_BACKGROUND = "background"
PRIORITIES = (PRIORITY_INTERACTIVE, PRIORITY_BACKGROUND)

# --- The adaptive budget (AIMD) ---
# A congestion event lowers the learned budget to at most this share of itself...
DECREASE_FACTOR = 0.85
# ...and never below this share of itself, however few requests the window held.
DECREASE_FLOOR = 0.5
# A 429 at least this many windows after the last decrease, with the window full to the
# budget, is a probe that overstepped: step back a little instead of multiplicatively.
GENTLE_AFTER_WINDOWS = 1.0
# The learned budget never falls below this share of the configured one (nor below 1).
MIN_BUDGET_FRACTION = 0.05
# Each full window in which we used the learned budget adds this share of the configured one
# (at least one request).
INCREASE_FRACTION = 0.01
# A window counts as used when it held at least this share of the learned budget.
BUSY_FRACTION = 0.9
# A learned budget nobody touched for this long is forgotten (back to the configured one).
LEARNED_MEMORY_SECONDS = 24 * 3600.0

# --- Fair sharing ---
# While interactive and background parties both wait, one grant in this many goes to the
# background, so auto-sync is slowed by interactive work but never starved.
BACKGROUND_EVERY = 10
# A party that is not next sleeps this long before asking again (the next party takes the
# slot meanwhile).
TURN_WAIT_SECONDS = 0.02
# A waiting party that did not ask again this long after it said it would has gone away.
WAITER_GRACE_SECONDS = 0.5
# The round-robin order remembers when a party was last served this long.
SERVED_MEMORY_SECONDS = 3600.0
ANONYMOUS_PARTY_PREFIX = "anonymous:"


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
        """After a 429: nobody sends until now + retry_after, and the budget adapts."""
        ...

    def rate(self) -> float:
        """The requests per second allowed now (the learned budget over the window, or a
        shorter real window's rate if lower)."""
        ...

    def configured_rate(self) -> float:
        """The requests per second ``SPOTIFY_RATE_LIMIT`` allows."""
        ...


@dataclass(frozen=True)
class BudgetState:
    """What the admin shows: the configured and the learned budget per window."""

    configured: int
    learned: float
    window: float
    shared: bool  # kept in Redis for all workers (False: this process only)
    # A real window shorter than ours, learned from a 429 (0 when none).
    short_limit: int = 0
    short_window: float = 0.0

    @property
    def configured_rate(self) -> float:
        return self.configured / self.window if self.configured else math.inf

    @property
    def learned_rate(self) -> float:
        """Requests per second allowed now: the learned budget, or a shorter real window's
        if that allows fewer."""
        if not self.configured:
            return math.inf
        rate = self.learned / self.window
        if self.short_limit and self.short_window > 0:
            rate = min(rate, self.short_limit / self.short_window)
        return rate


def default_burst(limit: int) -> int:
    return max(1, math.ceil(limit * BURST_FRACTION)) if limit > 0 else 0


def check_priority(priority: str) -> None:
    if priority not in PRIORITIES:
        raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}")


def min_budget(limit: int) -> float:
    return max(1.0, limit * MIN_BUDGET_FRACTION)


def increase_step(limit: int) -> float:
    return max(1.0, limit * INCREASE_FRACTION)


def decreased_budget(
    learned: float, limit: int, sent_in_window: int, since_last_decrease: float, window: float
) -> float:
    """The learned budget after a congestion event.

    ``sent_in_window`` is how many requests the window held when the rejected request left
    (itself included): Spotify admitted fewer. A probe that just overstepped a limit the
    budget had reached steps back to just under that count; anything else (a budget far too
    high, or a 429 again soon after the last decrease) decreases multiplicatively, to the
    count if that is lower (one step for a configured budget far above the real one).
    """
    ceiling = float(max(0, sent_in_window - 1))
    calm = since_last_decrease >= GENTLE_AFTER_WINDOWS * window
    if calm and ceiling >= learned * DECREASE_FACTOR:
        target = min(learned, ceiling) - increase_step(limit)
    else:
        target = min(learned * DECREASE_FACTOR, ceiling)
    return max(min_budget(limit), learned * DECREASE_FLOOR, target)


def short_window(
    now: float, retry_after: float, oldest: float | None, window: float
) -> float | None:
    """Spotify's window, when the first 429 shows it is shorter than ours, else None.

    Until that 429 everything we sent was admitted, so the oldest request in our window
    (sent at ``oldest``) is the oldest in Spotify's, and the Retry-After says when it leaves
    Spotify's window.
    """
    if oldest is None or retry_after <= 0:
        return None
    estimate = now + retry_after - oldest
    return estimate if estimate < window * SHORT_WINDOW_FRACTION else None


def window_limits(
    learned: float, limit: int, burst: int | None, window: float
) -> tuple[int, int, float]:
    """(requests per window, burst, burst window) for a learned budget."""
    allowed = max(1, math.floor(learned + 1e-9))
    if burst is None:
        return allowed, 1, window / (allowed * PACE_FACTOR)
    # An explicit burst scales down with the budget, keeping the same share of it.
    cap = max(1, math.floor(burst * allowed / limit)) if burst else 0
    if cap >= allowed:
        cap = 0
    return allowed, cap, (window * cap / allowed if cap else 0.0)
