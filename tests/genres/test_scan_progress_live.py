"""A running scan writes its progress to its row at least every couple of seconds while
Spotify answers, so the listener's page moves (against the sandbox over HTTP, with one request
at a time and latency so that the artist lookups take several seconds)."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from genres import ratelimit, scan_runner
from tests.genres.conftest import sign_in
from tests.genres.test_scan_sandbox import scan_to_end

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


@pytest.fixture(autouse=True)
def _fresh_limiter() -> None:
    """A fresh process-wide rate limiter: what an earlier test's 429s taught it (a lower
    budget, a hold) must not slow this test down or make its scan wait for the budget."""
    ratelimit._limiters.clear()


# One request at a time at 100 ms: ten answers a second, so a write per 50 artists (the old
# cadence) would leave five seconds between writes; the page needs one every two.
LONGEST_GAP_SECONDS = 3.0


def test_progress_is_written_every_couple_of_seconds_while_artists_are_looked_up(
    client: Any, spotify_at_sandbox: Any, settings: Any, enqueued: Any, monkeypatch: Any
):
    sandbox = spotify_at_sandbox
    spec = {"tracks": 100, "artists": 90, "followed_fraction": 0, "top_fraction": 0}
    sandbox.create_user({"id": "slow", "artist_offset": 90_000, **spec})
    sign_in(client, sandbox, "slow")
    settings.SPOTIFY_CONCURRENCY = 1
    sandbox.set_faults(latency_ms=100)
    writes: list[tuple[float, int]] = []
    real_save = scan_runner._ScanRun.save

    def noting_save(self: Any, **changes: Any) -> None:
        real_save(self, **changes)
        writes.append((time.monotonic(), self.scan.artists_fetched))

    monkeypatch.setattr(scan_runner._ScanRun, "save", noting_save)

    scan = scan_to_end(client)

    assert scan["status"] == "succeeded"
    assert scan["artistsFetched"] >= 80
    looking_up = [(at, fetched) for at, fetched in writes if 0 < fetched < scan["artistsFetched"]]
    assert len({fetched for _, fetched in looking_up}) >= 4  # the count moves, not jumps
    times = [writes[0][0]] + [at for at, _ in looking_up]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert max(gaps) < LONGEST_GAP_SECONDS, gaps
