"""The adaptive, fair limiter with real Spotify clients against the sandbox over HTTP: an
app-wide window tighter than the configured budget costs few 429s once the limiter has
learned it, and listeners get equal shares."""

from __future__ import annotations

import threading
import time
from collections import Counter

from genres.ratelimit import SMOOTH_ALWAYS, LocalRateLimiter
from genres.spotify import CallRecord, SpotifyClient
from sandbox.testing import RunningSandbox


class StaticTokens:
    def __init__(self, access_token: str) -> None:
        self.token = access_token

    def access_token(self) -> str:
        return self.token

    def force_refresh(self) -> str:
        raise AssertionError("no 401 expected in these tests")


def run_listeners(
    sandbox: RunningSandbox, limiter: LocalRateLimiter, threads: list[int], calls: int
) -> tuple[Counter[int], dict[str, float], float]:
    """Listener n's ``threads[n]`` threads share ``calls`` reads through the listener's own
    client; returns the statuses, when each listener finished and the time it all took."""
    token = sandbox.issue_token("listener")["access_token"]
    statuses: Counter[int] = Counter()
    finished: dict[str, float] = {}
    lock = threading.Lock()

    def record(call: CallRecord) -> None:
        with lock:
            statuses[call.status] += 1

    def listener(party: str, threads: int) -> None:
        client = SpotifyClient(
            tokens=StaticTokens(token),
            limiter=limiter,
            on_call=record,
            concurrency=threads,
            party=party,
        )
        left = iter(range(calls))
        left_lock = threading.Lock()

        def thread() -> None:
            while True:
                with left_lock:
                    if next(left, None) is None:
                        return
                client.me()

        pool = [threading.Thread(target=thread) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        finished[party] = time.monotonic() - start

    start = time.monotonic()
    pool = [
        threading.Thread(target=listener, args=(f"user-{n}", count))
        for n, count in enumerate(threads)
    ]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return statuses, finished, time.monotonic() - start


def test_four_listeners_under_a_window_tighter_than_configured_get_few_429s(
    adapter_sandbox: RunningSandbox,
) -> None:
    # Spotify: 10 per second for the whole app; Swedify believes 20 (the issue's case scaled
    # from 100 per 30 s against 150, so that it runs in seconds).
    adapter_sandbox.set_faults(rate_limit=10, rate_window=1.0)
    limiter = LocalRateLimiter(20, 1.0, margin=0.05, smooth=SMOOTH_ALWAYS)
    # The listeners run 1, 2, 4 and 8 threads (a scan's concurrency, several jobs).
    statuses, finished, elapsed = run_listeners(
        adapter_sandbox, limiter, threads=[1, 2, 4, 8], calls=15
    )
    assert statuses[200] == 60  # every call answered in the end
    calls = sum(statuses.values())
    # The issue's target is 5 %; with 60 calls each 429 is 1.6 %, so the bound leaves room
    # for the first oversteps on a loaded machine. (The contrast with a fixed budget is in
    # test_budget_aimd's simulation, where runs are long enough to show it.)
    assert statuses[429] / calls <= 0.10
    # It learned the real window (10 per 1.05 s of ours, probing a request or two above).
    assert 8.0 <= limiter.learned <= 12.5
    # 60 calls at 10 per second need at least 5 s. Shared per listener, the four finish
    # together; shared per thread, the eight-thread listener would be done in under half
    # the time of the one-thread listener.
    assert elapsed >= 5.0
    assert min(finished.values()) >= 0.75 * max(finished.values())
