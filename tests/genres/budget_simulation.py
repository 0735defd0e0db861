"""A discrete-event simulation of Swedify's workers against a Spotify-like rolling window,
on a fake clock, for the unit tests of the adaptive and fair limiter (``test_budget_*``).

Each simulated thread loops: ask the limiter for a slot (sleeping what it says), send, and
on a 429 tell the limiter and sit out the Retry-After, like ``SpotifyClient``. Spotify is
modelled like the sandbox: a rolling window of admitted requests whose 429s carry the exact
Retry-After (rounded up to whole seconds); rejected requests take no slot.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass, field

from genres.ratelimit import PRIORITY_INTERACTIVE, LocalRateLimiter


class SimClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        raise AssertionError("the simulation schedules waits itself")


class SimSpotify:
    """The app-wide rolling window: at most ``limit`` admitted requests in any ``window`` s."""

    def __init__(self, limit: int, window: float, clock: SimClock) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.admitted: deque[float] = deque()

    def answer(self) -> int | None:
        """None when admitted, else the Retry-After of the 429."""
        now = self.clock.now
        while self.admitted and self.admitted[0] <= now - self.window:
            self.admitted.popleft()
        if len(self.admitted) >= self.limit:
            return max(1, math.ceil(self.admitted[0] + self.window - now))
        self.admitted.append(now)
        return None


@dataclass
class Party:
    name: str
    threads: int
    requests: int
    priority: str = PRIORITY_INTERACTIVE
    start: float = 0.0
    done: int = 0
    calls: int = 0
    limited: int = 0
    finished_at: float | None = None
    grants: list[float] = field(default_factory=list)


@dataclass
class Outcome:
    parties: dict[str, Party]
    started: float
    ended: float
    limiter: LocalRateLimiter

    @property
    def calls(self) -> int:
        return sum(p.calls for p in self.parties.values())

    @property
    def limited(self) -> int:
        return sum(p.limited for p in self.parties.values())

    @property
    def share_429(self) -> float:
        return self.limited / self.calls

    @property
    def wall(self) -> float:
        return self.ended - self.started


def simulate(
    *,
    configured: int,
    real_limit: int,
    real_window: float,
    parties: list[Party],
    rtt: float = 0.05,
    seed: int = 1,
    limiter: LocalRateLimiter | None = None,
    clock: SimClock | None = None,
) -> Outcome:
    """Run until every party has had all its requests admitted."""
    rng = random.Random(seed)
    clock = clock or SimClock()
    limiter = limiter or LocalRateLimiter(configured, clock=clock, sleep=clock.sleep)
    spotify = SimSpotify(real_limit, real_window, clock)
    started = clock.now
    by_name = {p.name: p for p in parties}
    # (time, tie-breaker, kind, party, when the request was let through, Retry-After)
    events: list[tuple[float, int, str, str, float, int]] = []
    sequence = 0

    def at(when: float, kind: str, party: str, sent: float = 0.0, retry_after: int = 0) -> None:
        nonlocal sequence
        sequence += 1
        heapq.heappush(events, (when, sequence, kind, party, sent, retry_after))

    for party in parties:
        for thread in range(party.threads):
            at(started + party.start + rng.uniform(0, 0.01), "ask", f"{party.name}#{thread}")
    in_flight = {p.name: 0 for p in parties}
    while events:
        when, _, kind, thread, sent, retry_after = heapq.heappop(events)
        clock.now = when
        name = thread.split("#")[0]
        party = by_name[name]
        if kind == "ask":
            if party.done + in_flight[name] >= party.requests:
                continue  # this thread has nothing left to send
            wait = limiter.try_acquire(party=name, priority=party.priority, ticket=thread)
            if wait > 0:
                at(when + wait + rng.uniform(0, 0.005), "ask", thread)
                continue
            party.grants.append(when)
            in_flight[name] += 1
            at(when + rtt / 2, "arrive", thread, when)
        elif kind == "arrive":
            answer = spotify.answer()
            party.calls += 1
            if answer is None:
                at(when + rtt / 2, "ok", thread, sent)
            else:
                party.limited += 1
                at(when + rtt / 2, "429", thread, sent, answer)
        elif kind == "ok":
            in_flight[name] -= 1
            party.done += 1
            if party.done >= party.requests:
                party.finished_at = when
            at(when, "ask", thread)
        else:  # a 429: tell the limiter, then sit out the Retry-After like SpotifyClient
            in_flight[name] -= 1
            limiter.penalize(retry_after, sent_at=sent)
            at(when + retry_after, "ask", thread)
    ended = max(p.finished_at or clock.now for p in parties)
    return Outcome(by_name, started, ended, limiter)
