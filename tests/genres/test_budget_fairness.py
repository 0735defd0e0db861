"""Fair sharing in the local limiter, on a fake clock: listeners (parties) take turns
whatever their number of threads, interactive work before background work, and a party
alone gets the whole budget."""

from __future__ import annotations

import pytest

from genres.ratelimit import (
    PRIORITY_BACKGROUND,
    PRIORITY_INTERACTIVE,
    SMOOTH_ALWAYS,
    LocalRateLimiter,
    RateLimiterTimeout,
)
from genres.ratelimit_core import WAITER_GRACE_SECONDS
from tests.genres.budget_simulation import Party, SimClock, simulate


def fixed_budget(limit: int, clock: SimClock, window: float = 30.0) -> LocalRateLimiter:
    # Paced as in production (a tenth of the budget per tenth of the window): fairness is
    # among the parties waiting when a slot frees, and unpaced slots free all at once, faster
    # than a one-thread party can come back for the next.
    return LocalRateLimiter(
        limit, window, margin=0.0, smooth=SMOOTH_ALWAYS, adaptive=False, clock=clock
    )


# Fairness is among the parties waiting when a slot frees: with answers this fast even a
# one-thread party is back before the next slot (paced at three times 20 a second).
FAST_RTT = 0.005


def grants_between(party: Party, start: float, end: float) -> int:
    return sum(1 for t in party.grants if start <= t < end)


def test_a_listener_with_eight_threads_gets_no_more_than_a_listener_with_one() -> None:
    clock = SimClock()
    many = Party("many", threads=8, requests=400)
    one = Party("one", threads=1, requests=400)
    simulate(
        configured=20,
        real_limit=1000,
        real_window=1.0,
        parties=[many, one],
        limiter=fixed_budget(20, clock, window=1.0),
        clock=clock,
        rtt=FAST_RTT,
    )
    # While both wait, slots alternate: in the first 10 s (200 slots) each gets about half.
    start = 1000.0  # when the simulation starts
    assert grants_between(many, start, start + 10) == pytest.approx(100, abs=4)
    assert grants_between(one, start, start + 10) == pytest.approx(100, abs=4)


def test_four_listeners_with_different_thread_counts_share_the_window_equally() -> None:
    clock = SimClock()
    parties = [Party(f"p{n}", threads=n, requests=300) for n in (1, 2, 4, 8)]
    simulate(
        configured=40,
        real_limit=1000,
        real_window=1.0,
        parties=parties,
        limiter=fixed_budget(40, clock, window=1.0),
        clock=clock,
        rtt=FAST_RTT,
    )
    counts = [grants_between(p, 1000.0, 1010.0) for p in parties]
    # 400 slots, 100 each.
    assert min(counts) >= 95
    assert max(counts) <= 105


def test_a_listener_alone_uses_the_whole_budget() -> None:
    clock = SimClock()
    alone = Party("alone", threads=3, requests=200)
    outcome = simulate(
        configured=20,
        real_limit=1000,
        real_window=1.0,
        parties=[alone],
        limiter=fixed_budget(20, clock, window=1.0),
        clock=clock,
    )
    # 200 requests at 20 per second: the tenth window's slots (paced over a third of it)
    # end it, nothing left idle (half the slots would take 20 s).
    assert 9.0 <= outcome.wall <= 9.5


def test_a_listener_who_starts_later_gets_their_share_at_once() -> None:
    clock = SimClock()
    early = Party("early", threads=8, requests=1000)
    late = Party("late", threads=2, requests=20, start=5.0)
    simulate(
        configured=20,
        real_limit=1000,
        real_window=1.0,
        parties=[early, late],
        limiter=fixed_budget(20, clock, window=1.0),
        clock=clock,
    )
    # Half the slots from its start on: 20 requests in about 2 s, not behind the early queue.
    assert late.finished_at is not None
    assert late.finished_at - (1000.0 + 5.0) < 3.0


def test_background_work_waits_for_interactive_work_but_is_never_starved() -> None:
    clock = SimClock()
    interactive = Party("scan", threads=4, requests=1000)
    background = Party("sync", threads=4, requests=1000, priority=PRIORITY_BACKGROUND)
    simulate(
        configured=20,
        real_limit=10_000,
        real_window=1.0,
        parties=[interactive, background],
        limiter=fixed_budget(20, clock, window=1.0),
        clock=clock,
    )
    # While the scan waits, one slot in ten goes to auto-sync (200 slots in 10 s).
    assert grants_between(background, 1000.0, 1010.0) == pytest.approx(20, abs=3)
    assert grants_between(interactive, 1000.0, 1010.0) == pytest.approx(180, abs=3)


def test_background_work_alone_gets_the_whole_budget() -> None:
    clock = SimClock()
    background = Party("sync", threads=2, requests=100, priority=PRIORITY_BACKGROUND)
    outcome = simulate(
        configured=20,
        real_limit=1000,
        real_window=1.0,
        parties=[background],
        limiter=fixed_budget(20, clock, window=1.0),
        clock=clock,
    )
    assert 4.0 <= outcome.wall <= 5.0  # 100 at 20 per second (half the slots: 9 s)


class StepClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_party_served_longest_ago_goes_first_and_a_newcomer_queues_behind() -> None:
    clock = StepClock()
    limiter = LocalRateLimiter(2, 10.0, margin=0.0, burst=0, adaptive=False, clock=clock)
    assert limiter.try_acquire(party="a") == 0
    assert limiter.try_acquire(party="b") == 0
    # Full: a, b and then c wait for the slot that frees at 1010.
    for party in ("a", "b", "c"):
        assert limiter.try_acquire(party=party) == pytest.approx(10.0)
    clock.now = 1010.0
    # c asks first, but a was served longest ago (c's turn comes after those already waiting).
    assert limiter.try_acquire(party="c") > 0
    assert limiter.try_acquire(party="b") > 0
    assert limiter.try_acquire(party="a") == 0


def test_a_waiting_party_that_went_away_holds_up_no_one_for_long() -> None:
    clock = StepClock()
    limiter = LocalRateLimiter(1, 10.0, margin=0.0, burst=0, adaptive=False, clock=clock)
    assert limiter.try_acquire(party="x") == 0
    clock.now = 1001.0
    assert limiter.try_acquire(party="gone") == pytest.approx(9.0)  # says it asks at 1010
    clock.now = 1002.0
    assert limiter.try_acquire(party="b") == pytest.approx(8.0)  # queues behind gone
    clock.now = 1010.0
    assert limiter.try_acquire(party="b") > 0  # gone's turn: it may still come
    clock.now = 1010.0 + WAITER_GRACE_SECONDS + 0.01
    assert limiter.try_acquire(party="b") == 0  # it did not: b takes the slot


def test_a_timeout_says_how_long_this_party_would_wait_behind_the_others() -> None:
    clock = StepClock()
    limiter = LocalRateLimiter(10, 10.0, margin=0.0, burst=0, adaptive=False, clock=clock)
    for _ in range(10):
        limiter.acquire(party="a")
    for party in ("b", "c"):
        assert limiter.try_acquire(party=party) == pytest.approx(10.0)
    with pytest.raises(RateLimiterTimeout) as caught:
        limiter.acquire(timeout=1.0, party="d")
    # The slot in 10 s, then b's and c's turns at one second each (10 per 10 s).
    assert caught.value.wait == pytest.approx(12.0, abs=0.01)
    assert clock.now == 1000.0  # it said so at once


def test_an_unknown_priority_is_refused() -> None:
    limiter = LocalRateLimiter(10)
    with pytest.raises(ValueError, match="priority"):
        limiter.acquire(priority="urgent")
    assert PRIORITY_INTERACTIVE == "interactive"
