"""The in-process limiter: the rules of ``genres.ratelimit`` for the threads of one process
(and the fallback of the Redis limiter)."""

from __future__ import annotations

import bisect
import math
import random
import threading
import time
import uuid
from collections.abc import Callable

from genres.ratelimit_core import (
    ANONYMOUS_PARTY_PREFIX,
    BACKGROUND_EVERY,
    BUSY_FRACTION,
    DEFAULT_ACQUIRE_TIMEOUT,
    LEARNED_MEMORY_SECONDS,
    PRIORITIES,
    PRIORITY_BACKGROUND,
    PRIORITY_INTERACTIVE,
    SERVED_MEMORY_SECONDS,
    SMOOTH_AFTER_429,
    SMOOTH_ALWAYS,
    SMOOTH_MODES,
    SMOOTH_NEVER,
    SMOOTHING_SECONDS,
    TURN_WAIT_SECONDS,
    WAITER_GRACE_SECONDS,
    WAKE_JITTER_SECONDS,
    WINDOW_MARGIN_SECONDS,
    WINDOW_SECONDS,
    BudgetState,
    RateLimiterTimeout,
    check_priority,
    decreased_budget,
    default_burst,
    increase_step,
    min_budget,
    short_window,
    window_limits,
)


def anonymous_party() -> str:
    """A party of its own for a caller that names none."""
    return f"{ANONYMOUS_PARTY_PREFIX}{uuid.uuid4().hex}"


def timeout_message(timeout: float, wait: float) -> str:
    return f"no Spotify request slot within {timeout:g} s (next in {wait:.1f} s)"


class LocalRateLimiter:
    """Rolling window, burst cap, adaptive budget and fair turns in this process; thread-safe.

    ``limit`` 0 means unlimited (holds from ``penalize`` still apply, nothing is learned).
    ``burst`` None paces requests (``PACE_FACTOR``), a number caps bursts to it, 0 turns
    both off; ``smooth`` says when that applies; ``adaptive`` False keeps the configured
    budget whatever Spotify answers. ``clock`` and ``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        limit: int,
        window: float = WINDOW_SECONDS,
        *,
        burst: int | None = None,
        smooth: str = SMOOTH_AFTER_429,
        margin: float = WINDOW_MARGIN_SECONDS,
        adaptive: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit < 0:
            raise ValueError("limit must be 0 (unlimited) or positive")
        if smooth not in SMOOTH_MODES:
            raise ValueError(f"smooth must be one of {', '.join(SMOOTH_MODES)}")
        self.limit = limit
        self.smooth = smooth
        self.adaptive = adaptive and limit > 0
        self.window = window + margin
        self.margin = margin
        self.burst_option = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # Send times, oldest first, kept two windows: a 429 counts the window its request
        # was sent in, which may have begun before the current one.
        self._sent: list[float] = []
        self._hold_until = 0.0
        self._smooth_until = 0.0
        self.learned = float(limit)
        # A real window shorter than ours, learned from a first 429 (0 = none).
        self.short_limit = 0
        self.short_window = 0.0
        self._short_changed_at = 0.0
        self._changed_at = clock()
        self._decreased_at = -math.inf
        # Requests waiting for a slot, per priority: ticket -> (party, when it asks again).
        self._waiting: dict[str, dict[str, tuple[str, float]]] = {p: {} for p in PRIORITIES}
        # Round-robin order: party -> when it was last served (or started waiting).
        self._served: dict[str, float] = {}
        self._interactive_streak = 0
        # The time of each thread's latest grant, to tell which 429s belong to one event.
        self._grants = threading.local()

    # Budget ----------------------------------------------------------------------------------

    @property
    def burst(self) -> int:
        return self._limits()[1]

    @property
    def burst_window(self) -> float:
        return self._limits()[2]

    def _limits(self) -> tuple[int, int, float]:
        if not self.limit:
            return 0, 0, 0.0
        return window_limits(self.learned, self.limit, self.burst_option, self.window)

    def rate(self) -> float:
        """Requests per second allowed now (BudgetState.learned_rate)."""
        return self.state().learned_rate

    def configured_rate(self) -> float:
        return self.limit / self.window if self.limit else math.inf

    def state(self) -> BudgetState:
        return BudgetState(
            self.limit,
            self.learned,
            self.window,
            shared=False,
            short_limit=self.short_limit,
            short_window=self.short_window,
        )

    def adopt(self, learned: float) -> None:
        """Take over a budget learned elsewhere (the Redis limiter keeps its fallback current)."""
        with self._lock:
            if self.adaptive:
                learned = max(min_budget(self.limit), min(float(self.limit), learned))
                if learned != self.learned:
                    # Fresh news: the day after which an untouched budget is forgotten, and
                    # the window before the next increase, count from now.
                    self.learned, self._changed_at = learned, self._clock()

    def smoothing(self) -> bool:
        """Whether the burst cap applies now."""
        return self._smoothing(self._clock())

    def _smoothing(self, now: float) -> bool:
        if self.smooth == SMOOTH_NEVER:
            return False
        if self.smooth == SMOOTH_ALWAYS:
            return True
        return now < self._smooth_until or self.learned < self.limit

    def _count_since(self, since: float) -> int:
        return len(self._sent) - bisect.bisect_right(self._sent, since)

    def _adapt(self, now: float) -> None:
        """Additive increase: a full window spent at the learned budget earns a little more."""
        cutoff = bisect.bisect_right(self._sent, now - 2 * self.window)
        if cutoff:
            del self._sent[:cutoff]
        if not self.adaptive:
            return
        # The short window probes up too: one more after each of our windows in which it
        # was used to the full, so a low first estimate does not stick.
        short_busy = (
            self.short_limit
            and now - self._short_changed_at >= self.window
            and self._count_since(now - self.short_window) >= BUSY_FRACTION * self.short_limit
        )
        if short_busy:
            self.short_limit += 1
            self._short_changed_at = now
        if self.learned >= self.limit:
            return
        if now - self._changed_at > LEARNED_MEMORY_SECONDS:
            self.learned, self._changed_at = float(self.limit), now
            self.short_limit, self.short_window = 0, 0.0
        elif now - self._changed_at >= self.window:
            allowed = self._limits()[0]
            if self._count_since(now - self.window) >= BUSY_FRACTION * allowed:
                self.learned = min(float(self.limit), self.learned + increase_step(self.limit))
                self._changed_at = now

    def _slot_wait(self, now: float) -> float:
        if self._hold_until > now:
            return self._hold_until - now
        if not self.limit:
            return 0.0
        allowed, burst, burst_window = self._limits()
        wait = 0.0
        if len(self._sent) >= allowed:
            wait = self._sent[-allowed] + self.window - now
        if burst and len(self._sent) >= burst and self._smoothing(now):
            wait = max(wait, self._sent[-burst] + burst_window - now)
        if self.short_limit and len(self._sent) >= self.short_limit:
            wait = max(wait, self._sent[-self.short_limit] + self.short_window - now)
        return wait

    # Turns -----------------------------------------------------------------------------------
    #
    # Each waiting request holds a ticket (party, when it asks again), so a party waits as long
    # as any of its threads does; turns are taken per party.

    def _forget(self, now: float) -> None:
        for waiting in self._waiting.values():
            stale = [t for t, (_, wake) in waiting.items() if wake < now - WAITER_GRACE_SECONDS]
            for ticket in stale:
                del waiting[ticket]
        if len(self._served) > 64:
            old = now - SERVED_MEMORY_SECONDS
            for party in [p for p, at in self._served.items() if at < old]:
                del self._served[party]

    def _order(self, party: str, now: float) -> tuple[float, str]:
        return self._served.get(party, now), party

    def _parties(self, priority: str, before: float = math.inf) -> set[str]:
        return {party for party, wake in self._waiting[priority].values() if wake <= before}

    def _next(self, now: float, party: str, priority: str) -> tuple[str, str]:
        """The (party, priority) whose turn it is among those due now, the caller included."""
        due = {p: self._parties(p, now + TURN_WAIT_SECONDS) for p in PRIORITIES}
        due[priority].add(party)
        if due[PRIORITY_INTERACTIVE] and due[PRIORITY_BACKGROUND]:
            background_turn = self._interactive_streak >= BACKGROUND_EVERY - 1
            cls = PRIORITY_BACKGROUND if background_turn else PRIORITY_INTERACTIVE
        else:
            cls = PRIORITY_INTERACTIVE if due[PRIORITY_INTERACTIVE] else PRIORITY_BACKGROUND
        return min(due[cls], key=lambda name: self._order(name, now)), cls

    def _ahead(self, party: str, priority: str, now: float) -> int:
        mine = self._order(party, now)
        ahead = sum(1 for name in self._parties(priority) if self._order(name, now) < mine)
        if priority == PRIORITY_BACKGROUND:
            # Roughly: every waiting interactive party first.
            ahead += len(self._parties(PRIORITY_INTERACTIVE))
        return ahead

    def _spacing(self, now: float) -> float:
        _, burst, burst_window = self._limits()
        return burst_window if burst == 1 and self._smoothing(now) else 0.0

    def _interval(self) -> float:
        allowed = self._limits()[0]
        return self.window / allowed if allowed else 0.0

    def _grant(self, now: float, party: str, priority: str, ticket: str) -> None:
        if self.limit:
            self._sent.append(now)
        self._waiting[priority].pop(ticket, None)
        if priority == PRIORITY_INTERACTIVE:
            background_waits = bool(self._waiting[PRIORITY_BACKGROUND])
            self._interactive_streak = self._interactive_streak + 1 if background_waits else 0
        else:
            self._interactive_streak = 0
        if party.startswith(ANONYMOUS_PARTY_PREFIX):
            self._served.pop(party, None)  # it never comes back
        else:
            self._served[party] = now
        self._grants.at = now

    def _try(self, party: str, priority: str, ticket: str) -> tuple[float, float]:
        """(0, 0) with a slot taken, else (seconds to sleep, estimated wait for a slot)."""
        with self._lock:
            now = self._clock()
            self._adapt(now)
            self._forget(now)
            self._served.setdefault(party, now)
            wait = self._slot_wait(now)
            if wait <= 0:
                turn = self._next(now, party, priority)
                if turn == (party, priority):
                    self._grant(now, party, priority, ticket)
                    return 0.0, 0.0
                # Someone else's turn: they are awake and take this slot; ask again for the
                # next one (paced, it comes a spacing later: no need to poll faster).
                wait = max(TURN_WAIT_SECONDS, self._spacing(now))
            self._waiting[priority][ticket] = (party, now + wait)
            ahead = self._ahead(party, priority, now)
            return wait, max(wait, self._slot_wait(now)) + ahead * self._interval()

    def _leave(self, party: str, priority: str, ticket: str) -> None:
        with self._lock:
            self._waiting[priority].pop(ticket, None)
            if party.startswith(ANONYMOUS_PARTY_PREFIX):
                self._served.pop(party, None)

    def try_acquire(
        self,
        *,
        party: str | None = None,
        priority: str = PRIORITY_INTERACTIVE,
        ticket: str | None = None,
    ) -> float:
        """Take a slot and return 0, or return the seconds to wait before trying again.

        ``ticket`` names the request across its tries (default: one per party), so the
        party keeps its place while any of its requests waits.
        """
        check_priority(priority)
        name = party or anonymous_party()
        return self._try(name, priority, ticket or name)[0]

    def acquire(
        self,
        timeout: float = DEFAULT_ACQUIRE_TIMEOUT,
        *,
        party: str | None = None,
        priority: str = PRIORITY_INTERACTIVE,
    ) -> None:
        check_priority(priority)
        name = party or anonymous_party()
        ticket = uuid.uuid4().hex
        deadline = self._clock() + timeout
        try:
            while True:
                wait, expected = self._try(name, priority, ticket)
                if wait <= 0:
                    return
                if self._clock() + wait > deadline:
                    raise RateLimiterTimeout(timeout_message(timeout, expected), wait=expected)
                self._sleep(wait + random.uniform(0, WAKE_JITTER_SECONDS))
        except BaseException:
            self._leave(name, priority, ticket)
            raise

    def _learn_short_window(
        self, now: float, retry_after: float, sent_at: float, first: int, last: int
    ) -> None:
        if self.short_limit:
            # Still too many for the short window: one fewer, or what it held if less.
            held = last - bisect.bisect_right(self._sent, sent_at - self.short_window)
            self.short_limit = max(1, min(self.short_limit - 1, held - 1))
            self._short_changed_at = now
        elif self.learned >= self.limit and first < last:
            estimate = short_window(now, retry_after, self._sent[first], self.window)
            if estimate is not None:
                held = last - bisect.bisect_right(self._sent, sent_at - estimate)
                self.short_limit = max(1, held - 1)
                self.short_window = estimate + self.margin
                self._short_changed_at = now

    def record_send(self) -> None:
        """Count a request let through elsewhere (the Redis limiter keeps its fallback warm)."""
        with self._lock:
            now = self._clock()
            self._adapt(now)
            if self.limit:
                self._sent.append(now)
            self._grants.at = now

    def last_grant(self) -> float | None:
        """When this thread's latest request was let through (this limiter's clock)."""
        return getattr(self._grants, "at", None)

    def penalize(self, retry_after: float, *, sent_at: float | None = None) -> None:
        """After a 429: hold everyone until now + retry_after and lower the budget.

        ``sent_at`` (this limiter's clock) is when the rejected request was let through;
        by default this thread's latest grant, which is that request in SpotifyClient.
        """
        with self._lock:
            now = self._clock()
            self._hold_until = max(self._hold_until, now + max(0.0, retry_after))
            self._smooth_until = now + SMOOTHING_SECONDS
            if not self.adaptive:
                return
            if sent_at is None:
                sent_at = getattr(self._grants, "at", None)
            sent_at = now if sent_at is None else sent_at
            # Requests that left before the last decrease were sent at the old rate: their
            # 429s belong to the congestion event already answered.
            if sent_at <= self._decreased_at:
                return
            first = bisect.bisect_right(self._sent, sent_at - self.window)
            last = bisect.bisect_right(self._sent, sent_at)
            in_window = last - first
            self._learn_short_window(now, retry_after, sent_at, first, last)
            self.learned = decreased_budget(
                self.learned,
                self.limit,
                in_window,
                now - self._decreased_at,
                self.window,
            )
            self._decreased_at = self._changed_at = now


__all__ = ["LocalRateLimiter", "anonymous_party", "default_burst", "timeout_message"]
