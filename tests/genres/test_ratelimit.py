from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from genres import ratelimit
from genres.ratelimit import (
    SMOOTH_AFTER_429,
    SMOOTH_ALWAYS,
    SMOOTHING_SECONDS,
    LocalRateLimiter,
    RateLimiterTimeout,
    RedisRateLimiter,
    rate_limiter,
)
from tests.redis_db import redis_url


class FakeClock:
    """A clock whose sleep advances time instantly, recording each sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def local(
    limit: int,
    window: float = 30.0,
    *,
    burst: int | None = 0,
    smooth: str = SMOOTH_ALWAYS,
    clock: FakeClock,
) -> LocalRateLimiter:
    return LocalRateLimiter(
        limit, window, burst=burst, smooth=smooth, margin=0.0, clock=clock, sleep=clock.sleep
    )


# --- LocalRateLimiter -----------------------------------------------------------------------


def test_the_local_window_admits_the_budget_then_waits_for_the_oldest_to_leave() -> None:
    clock = FakeClock()
    limiter = local(3, 30.0, clock=clock)
    for _ in range(3):
        limiter.acquire()
        clock.now += 1.0
    assert clock.sleeps == []
    # Sent at 1000, 1001, 1002; now 1003: the next slot frees at 1030.
    limiter.acquire()
    assert clock.now == pytest.approx(1030.0, abs=0.01)
    limiter.acquire()
    assert clock.now == pytest.approx(1031.0, abs=0.01)


def test_the_window_rolls_instead_of_resetting_at_fixed_boundaries() -> None:
    clock = FakeClock()
    limiter = local(2, 10.0, clock=clock)
    limiter.acquire()
    clock.now += 9.0
    limiter.acquire()
    clock.now += 2.0  # 11 s after the first, 2 s after the second: one slot free
    limiter.acquire()
    assert clock.sleeps == []
    limiter.acquire()
    assert clock.now == pytest.approx(1000.0 + 9 + 10, abs=0.01)


def test_the_burst_cap_spreads_a_cold_start_without_lowering_the_long_run_rate() -> None:
    clock = FakeClock()
    limiter = local(30, 30.0, burst=3, clock=clock)
    start = clock.now
    times = []
    for _ in range(60):
        limiter.acquire()
        times.append(clock.now - start)
    # At most 3 in any 3 s: the first three at once, then three every 3 s.
    assert times[:3] == [0.0, 0.0, 0.0]
    assert times[3] == pytest.approx(3.0, abs=0.01)
    # 60 requests at 30 per 30 s need about 60 s in the long run, not more.
    assert times[-1] == pytest.approx(57.0, abs=0.1)
    for i in range(len(times) - 30):
        assert times[i + 30] - times[i] >= 30.0 - 1e-6


def test_after_a_429_requests_are_paced_at_three_times_the_average_rate() -> None:
    clock = FakeClock()
    # A fixed budget: here only the pacing is under test (the learned budget has its own).
    limiter = LocalRateLimiter(
        30, 30.0, margin=0.0, adaptive=False, smooth=SMOOTH_AFTER_429, clock=clock,
        sleep=clock.sleep,
    )  # fmt: skip
    for _ in range(30):
        limiter.acquire()
    assert clock.sleeps == []  # no 429 yet: the whole budget at once
    limiter.penalize(1.0)
    clock.now += 30.0
    start = clock.now
    for _ in range(6):
        limiter.acquire()
    # Now one every third of a second (30 per 30 s, three times as fast as the average).
    assert clock.now - start == pytest.approx(5 / 3, abs=0.03)  # plus wake-up jitter
    clock.now += SMOOTHING_SECONDS + 30.0
    start = clock.now
    for _ in range(30):
        limiter.acquire()
    assert clock.now == start  # the pacing lapsed with time


def test_the_default_pacing_spaces_requests_a_third_of_the_average_interval() -> None:
    limiter = LocalRateLimiter(150, 30.0, margin=0.0)
    assert limiter.burst == 1
    assert limiter.burst_window == pytest.approx(30.0 / 450)
    assert LocalRateLimiter(0).burst == 0


def test_penalize_holds_every_caller_until_the_retry_after_has_passed() -> None:
    clock = FakeClock()
    limiter = local(100, clock=clock)
    limiter.acquire()
    limiter.penalize(7.0)
    limiter.penalize(2.0)  # a shorter penalty never shortens the hold
    limiter.acquire()
    assert clock.now == pytest.approx(1007.0, abs=0.01)


def test_an_unlimited_budget_never_waits_but_still_honours_a_penalty() -> None:
    clock = FakeClock()
    limiter = local(0, clock=clock)
    for _ in range(1000):
        limiter.acquire()
    assert clock.sleeps == []
    limiter.penalize(3.0)
    limiter.acquire()
    assert clock.now == pytest.approx(1003.0, abs=0.01)


def test_it_raises_at_once_when_the_next_slot_is_beyond_the_timeout() -> None:
    clock = FakeClock()
    limiter = local(1, 30.0, clock=clock)
    limiter.acquire()
    with pytest.raises(RateLimiterTimeout, match="within 5 s"):
        limiter.acquire(timeout=5.0)
    assert clock.sleeps == []


def test_the_margin_widens_the_window() -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter(1, 10.0, burst=0, margin=0.5, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    limiter.acquire()
    assert clock.now == pytest.approx(1010.5, abs=0.01)


class AdmissionClock:
    """``time.monotonic``, remembering each thread's latest reading: with no burst cap the
    limiter reads its clock once per try, so after ``acquire`` returns that reading is the
    time it admitted the request at (a stamp taken afterwards may lag on a loaded machine)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def __call__(self) -> float:
        self._local.last = time.monotonic()
        return self._local.last

    @property
    def last(self) -> float:
        return self._local.last


def test_threads_sharing_a_local_limiter_never_exceed_the_budget_in_any_window() -> None:
    clock = AdmissionClock()
    limiter = LocalRateLimiter(10, 0.2, burst=0, margin=0.0, clock=clock)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(6):
            limiter.acquire()
            with lock:
                stamps.append(clock.last)

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stamps.sort()
    assert len(stamps) == 30
    for i in range(len(stamps) - 10):
        assert stamps[i + 10] - stamps[i] >= 0.2


# --- RedisRateLimiter -----------------------------------------------------------------------
#
# The Redis limiter reads Redis's clock, so these tests cannot fake time. What they assert
# about time holds on a loaded machine all the same: whether the limiter asked to sleep at all
# (recorded, not measured), that no requested wait is longer than the rule allows, and lower
# bounds on the elapsed time (a busy machine only ever makes waits longer). CLOCKS allows
# for Redis's clock (wall time) and this process's monotonic clock ticking apart.
CLOCKS = 0.01


@pytest.fixture
def prefix() -> Iterator[str]:
    url = redis_url()  # skips here, before the test, on a database not marked for tests
    name = f"test-ratelimit:{uuid.uuid4().hex}"
    yield name
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{name}:*"))
    if keys:
        client.delete(*keys)


class RecordedSleep:
    """Really sleeps, and keeps what the limiter asked for, its wake-up jitter taken off."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds - ratelimit.WAKE_JITTER_SECONDS)
        time.sleep(seconds)

    def none_longer_than(self, seconds: float) -> bool:
        return all(wait <= seconds for wait in self.waits)


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.integration
def test_two_workers_share_one_budget_through_redis(prefix: str) -> None:
    slept = RecordedSleep()
    options: dict = {"url": redis_url(), "burst": 0, "margin": 0.0, "key_prefix": prefix}
    worker_a = RedisRateLimiter(4, 0.5, sleep=slept, **options)
    worker_b = RedisRateLimiter(4, 0.5, sleep=slept, **options)
    start = time.monotonic()
    worker_a.acquire()
    worker_a.acquire()
    worker_b.acquire()
    worker_b.acquire()
    assert slept.waits == []  # the budget's four at once
    worker_b.acquire()  # the fifth request of the pair waits for the first to leave the window
    assert time.monotonic() - start >= 0.5 - CLOCKS
    assert slept.none_longer_than(0.5)
    assert not worker_a.using_fallback
    assert not worker_b.using_fallback


@pytest.mark.integration
def test_a_penalty_from_one_worker_holds_the_other(prefix: str) -> None:
    slept = RecordedSleep()
    worker_a = RedisRateLimiter(100, url=redis_url(), key_prefix=prefix)
    worker_b = RedisRateLimiter(100, url=redis_url(), key_prefix=prefix, sleep=slept)
    start = time.monotonic()
    worker_a.penalize(0.4)
    worker_b.acquire()
    assert time.monotonic() - start >= 0.4 - CLOCKS
    assert slept.none_longer_than(0.4)


@pytest.mark.integration
def test_the_redis_limiter_applies_the_burst_cap(prefix: str) -> None:
    slept = RecordedSleep()
    # 20 per 10 s with bursts of 2: two at once, then two more per second.
    limiter = RedisRateLimiter(
        20, 10.0, url=redis_url(), burst=2, smooth=SMOOTH_ALWAYS, margin=0.0, key_prefix=prefix,
        sleep=slept,
    )  # fmt: skip
    start = time.monotonic()
    for _ in range(4):
        limiter.acquire()
    # The third waited for the first to be a second old, the fourth for the second.
    assert time.monotonic() - start >= 1.0 - CLOCKS
    assert slept.none_longer_than(1.0)


@pytest.mark.integration
def test_a_429_seen_by_one_worker_caps_the_bursts_of_the_other(prefix: str) -> None:
    slept = RecordedSleep()
    # A fixed budget: only the shared burst cap is under test (test_budget_redis: learning).
    options: dict = {
        "url": redis_url(), "burst": 2, "margin": 0.0, "key_prefix": prefix, "adaptive": False,
    }  # fmt: skip
    worker_a = RedisRateLimiter(20, 10.0, **options)
    worker_b = RedisRateLimiter(20, 10.0, sleep=slept, **options)
    for _ in range(6):
        worker_b.acquire()
    assert slept.waits == []  # no cap before any 429
    worker_a.penalize(0.0)
    start = time.monotonic()
    for _ in range(3):
        worker_b.acquire()
    # Now two a second: the third after `start` waits for the first after it to be a second old.
    assert time.monotonic() - start >= 1.0 - CLOCKS
    assert slept.none_longer_than(1.0)


@pytest.mark.integration
def test_the_redis_limiter_times_out_clearly(prefix: str) -> None:
    slept = RecordedSleep()
    limiter = RedisRateLimiter(1, 30.0, url=redis_url(), burst=0, key_prefix=prefix, sleep=slept)
    limiter.acquire()
    with pytest.raises(RateLimiterTimeout, match=r"within 1 s \(next in (29|30)\.\d s\)"):
        limiter.acquire(timeout=1.0)
    assert slept.waits == []  # it said so at once instead of sleeping into the timeout


def test_with_redis_down_it_falls_back_at_once_and_still_limits(caplog) -> None:
    slept = RecordedSleep()
    url = f"redis://127.0.0.1:{unused_port()}/0"
    limiter = RedisRateLimiter(3, 0.4, url=url, burst=0, margin=0.0, sleep=slept)
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="genres.ratelimit"):
        for _ in range(3):
            limiter.acquire()
        assert limiter.using_fallback
        assert slept.waits == []  # no waiting for Redis: the fallback's budget, at once
        limiter.acquire()  # the fourth waits for the first to leave the fallback's window
        assert time.monotonic() - start >= 0.4
        limiter.penalize(0.1)
    warnings = [r for r in caplog.records if "Redis failed" in r.getMessage()]
    assert len(warnings) == 1
    start = time.monotonic()
    limiter.acquire(timeout=5.0)  # the penalty holds even without Redis
    assert time.monotonic() - start >= 0.05


def test_rate_limiter_is_one_instance_per_budget_and_backend(settings) -> None:
    ratelimit._limiters.clear()
    settings.REDIS_URL = ""
    settings.SPOTIFY_RATE_LIMIT = 90
    first = rate_limiter()
    assert isinstance(first, LocalRateLimiter)
    assert first.limit == 90
    assert rate_limiter() is first
    settings.SPOTIFY_RATE_LIMIT = 0
    assert rate_limiter() is not first
    settings.REDIS_URL = redis_url()
    settings.SPOTIFY_RATE_LIMIT = 90
    shared = rate_limiter()
    assert isinstance(shared, RedisRateLimiter)
    assert rate_limiter() is shared
    ratelimit._limiters.clear()


def test_the_process_limiter_paces_as_spotify_rate_smoothing_says(settings) -> None:
    ratelimit._limiters.clear()
    settings.REDIS_URL = ""
    settings.SPOTIFY_RATE_LIMIT = 150
    settings.SPOTIFY_RATE_SMOOTHING = "always"
    paced = rate_limiter()
    assert paced.smooth == SMOOTH_ALWAYS
    assert paced.smoothing()
    settings.SPOTIFY_RATE_SMOOTHING = "never"
    bursting = rate_limiter()
    assert bursting is not paced
    assert not bursting.smoothing()
    ratelimit._limiters.clear()
