"""The client's bounded concurrency: liked pages read in order several at a time, batch
artist lookups of 50 in parallel; failures stop new work and surface in page order."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from genres.pools import AHEAD_FACTOR
from genres.ratelimit import LocalRateLimiter
from genres.spotify import (
    Page,
    SpotifyClient,
    SpotifyRateLimited,
    SpotifyUnavailable,
)
from sandbox.testing import RunningSandbox
from tests.genres.test_spotify_client import client_for, liked_artist_ids

# A latency no scheduling hiccup comes near: requests sent "at once" overlap for sure.
SLOW_MS = 500


@pytest.fixture
def sandbox(adapter_sandbox: RunningSandbox) -> RunningSandbox:
    return adapter_sandbox


def offline_client(concurrency: int) -> SpotifyClient:
    """A client for ``pages_in_order`` with a fake ``fetch`` (no request is ever made)."""

    class NoTokens:
        def access_token(self) -> str:
            raise AssertionError("no request expected")

        force_refresh = access_token

    return SpotifyClient(tokens=NoTokens(), limiter=LocalRateLimiter(0), concurrency=concurrency)


class FakeLibrary:
    """``fetch(offset)`` over ``total`` numbered items, counting calls and calls in flight."""

    def __init__(self, total: int, *, delay: float = 0.01, short_at: int | None = None) -> None:
        self.total = total
        self.delay = delay
        self.short_at = short_at
        self.offsets: list[int] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.fail_at: dict[int, BaseException] = {}
        self._lock = threading.Lock()

    def fetch(self, offset: int) -> Page:
        with self._lock:
            self.offsets.append(offset)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.delay)
            if offset in self.fail_at:
                raise self.fail_at[offset]
            size = 30 if offset == self.short_at else 50
            items = [{"n": n} for n in range(offset, min(offset + size, self.total))]
            following = offset + len(items)
            more = following < self.total
            return Page(items=items, total=self.total, offset=offset, next="next" if more else None)
        finally:
            with self._lock:
                self.in_flight -= 1


def read_offsets(runs: Iterator[list[Page]], handed: list[int]) -> None:
    """Consumes a read, noting the offset of every page handed over (until it raises)."""
    for run in runs:
        handed.extend(page.offset for page in run)


def numbers(runs: list[list[Page]]) -> list[int]:
    return [item["n"] for run in runs for page in run for item in page.items]


class CountingSession(requests.Session):
    """A requests session that notes each request's path in order, how many were in flight
    as each one started (itself included), and the most in flight: what concurrency did,
    read from the requests themselves rather than from the clock."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []
        self.in_flight_at_start: list[int] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        with self._lock:
            self.paths.append(urlsplit(url).path)
            self.in_flight += 1
            self.in_flight_at_start.append(self.in_flight)
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return super().request(method, url, *args, **kwargs)
        finally:
            with self._lock:
                self.in_flight -= 1

    def reset(self) -> None:
        with self._lock:
            self.paths.clear()
            self.in_flight_at_start.clear()
            self.most_in_flight = self.in_flight


# --- Liked pages ----------------------------------------------------------------------------


def test_a_full_read_sends_the_first_page_alone_then_eight_at_once_and_keeps_order(
    sandbox,
) -> None:
    session = CountingSession()
    client, _ = client_for(sandbox, concurrency=8, session=session)
    serial = [
        item["track"] and item["track"]["id"]
        for offset in range(0, 600, 50)
        for item in client.liked_page(offset=offset).items
    ]
    sandbox.reset_stats()
    # Long enough that the eight of a round are all sent before the first of them returns,
    # however busy the machine (what is asserted is counted, not timed).
    sandbox.set_faults(latency_ms=SLOW_MS)
    session.reset()

    runs = list(client.pages_in_order(lambda o: client.liked_page(offset=o)))

    pages = [page for run in runs for page in run]
    assert [page.offset for page in pages] == list(range(0, 600, 50))
    assert [item["track"] and item["track"]["id"] for p in pages for item in p.items] == serial
    assert sandbox.stats()["by_route"] == {"GET /v1/me/tracks": 12}
    # The first page alone (its total gives the other offsets), then 11 pages 8 at a time.
    assert session.in_flight_at_start[:2] == [1, 1]
    assert session.most_in_flight == 8


def test_never_more_pages_than_the_concurrency_are_in_flight() -> None:
    library = FakeLibrary(1_000)
    runs = list(offline_client(4).pages_in_order(library.fetch))
    assert numbers(runs) == list(range(1_000))
    assert sorted(library.offsets) == list(range(0, 1_000, 50))  # each page exactly once
    assert library.most_in_flight == 4


def test_a_consumer_slower_than_the_fetches_holds_only_a_window_of_pages() -> None:
    library = FakeLibrary(2_000, delay=0.0)
    seen = 0
    for run in offline_client(3).pages_in_order(library.fetch):
        seen += sum(len(page.items) for page in run)
        time.sleep(0.005)
        # Never more than the window past what was handed over was even requested.
        assert max(library.offsets) < seen + AHEAD_FACTOR * 3 * 50
    assert seen == 2_000


def test_concurrency_one_reads_exactly_like_a_serial_loop() -> None:
    library = FakeLibrary(230)
    runs = list(offline_client(1).pages_in_order(library.fetch, offset=100))
    assert numbers(runs) == list(range(100, 230))
    assert library.offsets == [100, 150, 200]
    assert library.most_in_flight == 1


def test_a_short_page_realigns_the_offsets_that_follow() -> None:
    library = FakeLibrary(400, short_at=100)
    runs = list(offline_client(8).pages_in_order(library.fetch))
    assert numbers(runs) == list(range(400))
    assert 130 in library.offsets  # the page after the short one, wherever it starts


def test_a_failed_page_hands_over_the_pages_before_it_then_raises() -> None:
    library = FakeLibrary(1_000)
    library.fail_at[300] = SpotifyUnavailable("down", attempts=3)
    handed: list[int] = []
    with pytest.raises(SpotifyUnavailable):
        read_offsets(offline_client(4).pages_in_order(library.fetch), handed)
    assert handed == [0, 50, 100, 150, 200, 250]
    # No new page started once the failure was seen: at most the window past it was asked.
    assert max(library.offsets) < 300 + AHEAD_FACTOR * 4 * 50


def test_the_first_error_in_page_order_is_the_one_raised() -> None:
    library = FakeLibrary(1_000, delay=0.02)
    library.fail_at[100] = SpotifyUnavailable("first", attempts=3)
    library.fail_at[150] = SpotifyRateLimited("later", retry_after=60, quota=True)
    with pytest.raises(SpotifyUnavailable, match="first"):
        list(offline_client(4).pages_in_order(library.fetch))


def test_an_exhausted_quota_during_a_parallel_read_stops_after_the_admitted_pages(
    sandbox,
) -> None:
    client, _ = client_for(sandbox, concurrency=8)
    sandbox.set_faults(quota={"library": 5}, quota_retry_after=3600)
    handed: list[int] = []
    with pytest.raises(SpotifyRateLimited) as caught:
        read_offsets(client.pages_in_order(lambda o: client.liked_page(offset=o)), handed)
    assert caught.value.quota is True
    assert caught.value.retry_after == 3600
    # A prefix of the pages in order, never a gap: at most the 5 the quota admitted.
    assert handed == list(range(0, 50 * len(handed), 50))
    assert 1 <= len(handed) <= 5
    # The first 429 stopped new pages: only the window in flight was asked after it.
    assert sandbox.stats()["by_route"]["GET /v1/me/tracks"] <= 1 + AHEAD_FACTOR * 8


# --- Batch artist lookups -------------------------------------------------------------------


def test_extended_quota_batches_carry_fifty_ids_and_run_concurrently(sandbox) -> None:
    sandbox.configure(extended_quota=True)
    session = CountingSession()
    client, _ = client_for(sandbox, concurrency=8, session=session)
    ids = liked_artist_ids(client, 12)[:240]
    assert len(ids) == 240
    unknown = [f"{n:022d}" for n in range(1, 61)]
    sandbox.reset_stats()
    sandbox.set_faults(latency_ms=SLOW_MS)
    found: list[str] = []
    missing: list[str] = []
    threads: set[threading.Thread] = set()

    def on_artist(artist: dict) -> None:
        threads.add(threading.current_thread())
        found.append(artist["id"])

    def on_missing(artist_id: str) -> None:
        threads.add(threading.current_thread())
        missing.append(artist_id)

    session.reset()
    answer = client.artists([*ids, *unknown], on_artist=on_artist, on_missing=on_missing)

    # 300 ids in 6 requests: every batch is full.
    assert sandbox.stats()["by_route"] == {"GET /v1/artists": 6}
    assert sorted(found) == sorted(ids)
    assert sorted(missing) == sorted(unknown)
    assert all(answer[i] is None for i in unknown)
    assert len(answer) == 300
    assert threads == {threading.current_thread()}
    # One batch alone (is the batch allowed?), then the other 5 at once.
    assert session.in_flight_at_start[:2] == [1, 1]
    assert session.most_in_flight == 5

    # Known to work now: the next call sends all its batches at once, no lone probe first.
    sandbox.reset_stats()
    session.reset()
    client.artists(ids[:200])
    assert sandbox.stats()["by_route"] == {"GET /v1/artists": 4}
    assert session.most_in_flight == 4


def test_a_batch_forbidden_midway_falls_back_to_single_lookups_for_the_rest(sandbox) -> None:
    sandbox.configure(extended_quota=True)
    client, _ = client_for(sandbox, concurrency=8)
    ids = liked_artist_ids(client, 12)[:150]
    client.artists(ids[:1])  # the batch works
    sandbox.configure(extended_quota=False)  # and then it no longer does
    sandbox.reset_stats()
    answer = client.artists(ids)
    assert sorted(answer) == sorted(ids)
    assert all(answer[i] and answer[i]["id"] == i for i in ids)
    routes = sandbox.stats()["by_route"]
    assert routes["GET /v1/artists"] == 3
    assert routes["GET /v1/artists/{id}"] == 150


# --- Lookups beside a read ------------------------------------------------------------------


def test_lookups_beside_a_read_share_one_bound_and_send_only_full_batches(sandbox) -> None:
    sandbox.configure(extended_quota=True)
    session = CountingSession()
    client, _ = client_for(sandbox, concurrency=4, session=session)
    answers: dict[str, dict | None] = {}
    asked: dict[str, None] = {}
    sandbox.set_faults(latency_ms=30)

    with client.artist_lookups(answers.__setitem__) as lookups:
        for run in client.pages_in_order(lambda o: client.liked_page(offset=o)):
            for page in run:
                for item in page.items:
                    for artist in (item["track"] or {}).get("artists", []):
                        if artist.get("id"):
                            asked[artist["id"]] = None
                            lookups.add([artist["id"]])
            lookups.deliver()
        last_page = max(i for i, path in enumerate(session.paths) if path.endswith("/tracks"))
        lookups.finish()

    assert len(asked) > 100
    assert sorted(answers) == sorted(asked)
    assert all(answers[i] and answers[i]["id"] == i for i in asked)
    # Batches went out while pages were still read, 50 ids each but the last.
    first_batch = session.paths.index("/v1/artists")
    assert first_batch < last_page
    assert sandbox.stats()["by_route"]["GET /v1/artists"] == -(-len(asked) // 50)
    # Pages and lookups together: never more than the client's concurrency in flight.
    assert session.most_in_flight == 4


def test_deliver_does_not_wait_for_lookups_in_flight(sandbox) -> None:
    session = CountingSession()
    client, _ = client_for(sandbox, concurrency=4, session=session)
    ids = liked_artist_ids(client, 1)[:8]
    client.artists(ids[:1])  # learn Development Mode: single lookups from here on
    answers: dict[str, dict | None] = {}
    sandbox.set_faults(latency_ms=SLOW_MS)

    with client.artist_lookups(answers.__setitem__) as lookups:
        lookups.add(ids)
        lookups.deliver()
        # It returned with lookups still on their way: it did not wait for them.
        assert session.in_flight > 0
        assert len(answers) < len(ids)
        lookups.finish()

    assert sorted(answers) == sorted(ids)


def test_closing_lookups_drops_the_answers_not_delivered(sandbox) -> None:
    client, _ = client_for(sandbox, concurrency=2)
    ids = liked_artist_ids(client, 1)[:6]
    client.artists(ids[:1])  # Development Mode
    answers: dict[str, dict | None] = {}
    sandbox.set_faults(latency_ms=100)

    with client.artist_lookups(answers.__setitem__) as lookups:
        lookups.add(ids)
    sandbox.clear_faults()

    assert answers == {}
    # The two in flight finished; nothing new started after the close.
    assert sandbox.stats()["by_route"]["GET /v1/artists/{id}"] <= 1 + 2
