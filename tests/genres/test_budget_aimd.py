"""The adaptive budget of the shared limiter (AIMD), on a fake clock: how 429s lower it, how
busy windows raise it again, and the issue's targets in a simulation of the workers against a
Spotify-like window (``budget_simulation``)."""

from __future__ import annotations

import threading

import pytest

from genres.ratelimit import SMOOTH_AFTER_429, SMOOTH_ALWAYS, LocalRateLimiter
from genres.ratelimit_core import LEARNED_MEMORY_SECONDS
from tests.genres.budget_simulation import Party, SimClock, simulate


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def limiter_for(limit: int, clock: FakeClock, **options: object) -> LocalRateLimiter:
    return LocalRateLimiter(
        limit, 30.0, margin=0.0, burst=0, clock=clock, sleep=clock.sleep, **options
    )


def send(limiter: LocalRateLimiter, count: int) -> None:
    for _ in range(count):
        limiter.acquire()


def test_a_429_far_below_the_configured_budget_lowers_it_to_what_spotify_admitted() -> None:
    clock = FakeClock()
    limiter = limiter_for(150, clock)
    send(limiter, 101)  # Spotify admitted 100; the 101st is answered 429
    limiter.penalize(1.0)
    assert limiter.learned == 100.0
    assert limiter.rate() == pytest.approx(100 / 30.0)
    assert limiter.configured_rate() == pytest.approx(150 / 30.0)


def test_a_lone_429_at_most_halves_the_budget() -> None:
    clock = FakeClock()
    limiter = limiter_for(150, clock)
    send(limiter, 3)
    limiter.penalize(1.0)
    assert limiter.learned == 75.0


def test_the_429s_of_requests_in_flight_together_count_as_one_congestion_event() -> None:
    clock = FakeClock()
    limiter = limiter_for(150, clock)
    send(limiter, 90)
    granted = threading.Barrier(8)

    def worker() -> None:
        limiter.acquire()  # this thread's request ...
        granted.wait()  # ... is in flight with the seven others ...
        limiter.penalize(1.0)  # ... when its 429 comes back

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # One decrease, to just under what the first rejected request's window held (98 with
    # itself); a second would have taken it to 97 * 0.85.
    assert limiter.learned == 97.0


def test_a_429_for_a_request_sent_after_the_decrease_lowers_the_budget_again() -> None:
    clock = FakeClock()
    limiter = limiter_for(150, clock)
    send(limiter, 50)
    limiter.penalize(0.0)
    assert limiter.learned == 75.0  # at most halved in one event
    clock.now += 1.0
    limiter.acquire()  # sent at the lowered budget ...
    limiter.penalize(0.0)  # ... and still too many: a new event, to what the window held
    assert limiter.learned == 50.0


def test_a_probe_that_oversteps_after_a_calm_spell_steps_back_just_under_the_count() -> None:
    clock = FakeClock()
    limiter = limiter_for(150, clock)
    send(limiter, 101)
    limiter.penalize(0.0)
    assert limiter.learned == 100.0
    clock.now += 90.0  # three calm windows later, the window full again at the budget
    send(limiter, 100)
    limiter.penalize(0.0)
    assert limiter.learned == pytest.approx(99.0 - 1.5)  # not 85


def test_busy_windows_raise_the_budget_a_little_each_and_idle_ones_do_not() -> None:
    clock = FakeClock()
    limiter = limiter_for(150, clock)
    send(limiter, 101)
    limiter.penalize(0.0)
    assert limiter.learned == 100.0
    clock.now += 100.0  # idle windows earn nothing
    limiter.acquire()
    assert limiter.learned == 100.0
    clock.now += 30.0
    send(limiter, 100)  # a window used to the full: the next one earns 1 % of 150
    clock.now += 0.5
    limiter.acquire()
    assert limiter.learned == pytest.approx(101.5)
    limiter.acquire()
    assert limiter.learned == pytest.approx(101.5)  # one step per window, not per request


def test_the_budget_never_rises_above_the_configured_one() -> None:
    clock = FakeClock()
    limiter = limiter_for(10, clock)
    send(limiter, 8)
    limiter.penalize(0.0)
    for _ in range(20):
        clock.now += 31.0
        send(limiter, 10)
    assert limiter.learned == 10.0


def test_a_learned_budget_untouched_for_a_day_is_forgotten() -> None:
    clock = FakeClock()
    limiter = limiter_for(150, clock)
    send(limiter, 101)
    limiter.penalize(0.0)
    clock.now += LEARNED_MEMORY_SECONDS + 1
    limiter.acquire()
    assert limiter.learned == 150.0


def test_the_retry_after_is_honoured_whatever_the_budget_learned() -> None:
    clock = FakeClock()
    limiter = limiter_for(150, clock)
    send(limiter, 101)
    limiter.penalize(7.0)
    start = clock.now
    limiter.acquire()
    assert clock.now - start >= 7.0


def test_a_fixed_budget_learns_nothing() -> None:
    clock = FakeClock()
    limiter = limiter_for(150, clock, adaptive=False)
    send(limiter, 101)
    limiter.penalize(0.0)
    assert limiter.learned == 150.0


# --- The targets, simulated ---------------------------------------------------------


def least_time(total: int, limit: int, window: float) -> float:
    """When the last of ``total`` requests ready at once can go through a rolling window."""
    return ((total - 1) // limit) * window


def paced(configured: int, clock: SimClock) -> LocalRateLimiter:
    # As production configures it (SPOTIFY_RATE_SMOOTHING's default).
    return LocalRateLimiter(configured, smooth=SMOOTH_ALWAYS, clock=clock, sleep=clock.sleep)


def test_one_listener_under_15_per_10_s_gets_at_most_a_tenth_of_its_calls_answered_429() -> None:
    clock = SimClock()
    outcome = simulate(
        configured=150,
        real_limit=15,
        real_window=10.0,
        parties=[Party("listener", threads=8, requests=150)],
        limiter=paced(150, clock),
        clock=clock,
    )
    assert outcome.share_429 <= 0.10
    # The real window was learned from the first 429's Retry-After.
    assert outcome.limiter.short_limit <= 15
    assert 10.0 <= outcome.limiter.short_window <= 12.0


def test_four_listeners_under_100_per_30_s_lose_few_calls_and_little_time() -> None:
    clock = SimClock()
    outcome = simulate(
        configured=150,
        real_limit=100,
        real_window=30.0,
        parties=[Party(name, threads=8, requests=120) for name in "abcd"],
        limiter=paced(150, clock),
        clock=clock,
    )
    assert outcome.share_429 <= 0.05
    assert outcome.wall <= 1.3 * least_time(480, 100, 30.0)
    # Fair: the four finish within a few seconds of each other.
    finished = [p.finished_at for p in outcome.parties.values()]
    assert max(finished) - min(finished) < 10.0


def test_without_learning_the_same_four_listeners_lose_more_calls() -> None:
    # The contrast that shows the simulation can fail: the limiter before this one (a fixed
    # budget of 150, bursts capped only after a 429) oversteps again and again.
    clock = SimClock()
    fixed = LocalRateLimiter(150, smooth=SMOOTH_AFTER_429, adaptive=False, clock=clock)
    outcome = simulate(
        configured=150,
        real_limit=100,
        real_window=30.0,
        parties=[Party(name, threads=8, requests=120) for name in "abcd"],
        limiter=fixed,
        clock=clock,
    )
    assert outcome.share_429 > 0.05


def test_a_budget_adopted_from_redis_is_not_forgotten_for_the_age_of_the_process() -> None:
    clock = FakeClock()
    limiter = limiter_for(150, clock)
    clock.now += 2 * LEARNED_MEMORY_SECONDS  # a worker that has run for two days
    limiter.adopt(100.0)  # what Redis says, just before Redis fails
    limiter.acquire()
    assert limiter.learned == 100.0


def test_a_learned_short_window_probes_up_one_request_per_busy_window() -> None:
    clock = FakeClock()
    limiter = limiter_for(150, clock)
    send(limiter, 16)
    limiter.penalize(10.0)  # 15 per 10 s, learned from the Retry-After
    assert limiter.short_limit == 15
    assert limiter.short_window == pytest.approx(10.0)
    clock.now += 11.0
    send(limiter, 30)  # the short window used to the full for 20 s: no probe yet
    assert limiter.short_limit == 15
    send(limiter, 15)  # 30 s after the 429, still full: one more
    assert limiter.short_limit == 16


def test_the_rate_reported_for_time_estimates_is_the_short_windows_when_lower() -> None:
    clock = FakeClock()
    limiter = limiter_for(150, clock)
    send(limiter, 16)
    limiter.penalize(10.0)  # 15 per 10 s: 1.5 a second, below 75 per 30 s (2.5 a second)
    assert limiter.rate() == pytest.approx(1.5)
    assert limiter.configured_rate() == pytest.approx(5.0)
