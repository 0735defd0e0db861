"""How far a scan has come and how long it still needs, measured in Spotify requests.

A scan's work is Spotify requests: one for the profile, one per page of 50 entries, and (in
Development Mode) one per artist whose genres the shared cache does not know yet. Every
request goes through the shared rate limiter, so the requests left divided by the requests a
second the budget allows is an honest estimate when the budget is the bottleneck (the normal
case for a large library); when Spotify answers more slowly than the budget allows, the rate
observed so far is lower and is used instead.

One percentage covers all the steps, so the bar never starts again at a step change. The
number of artists to look up is only known once every page is read: until then it is
extrapolated from the artists found per song so far. An estimate can still shrink the bar a
little; the page script never moves the bar backwards (it keeps the highest value it showed).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from django.conf import settings

from genres.ratelimit import rate_limiter

logger = logging.getLogger(__name__)

# Spotify's page size for saved tracks and playlist items (genres.scan_runner.PAGE_SIZE).
PAGE_SIZE = 50
# Steps in order; a later step means every earlier one is complete.
STEP_ORDER = ("fetching_profile", "fetching_tracks", "fetching_artists", "aggregating", "done")
# Sorting songs into genres makes no request; the bar keeps this last share for it.
AGGREGATING_PERCENT = 99
# The observed rate is trusted only after this much work, so a slow first request does not
# predict a slow scan.
MIN_OBSERVED_REQUESTS = 20
MIN_OBSERVED_SECONDS = 10.0
# The rolling window of SPOTIFY_RATE_LIMIT (requests per 30 s), used when the limiter does not
# report its own rate.
RATE_WINDOW_SECONDS = 30.0


@dataclass(frozen=True)
class ScanProgress:
    """``percent`` 0-100 across all steps; ``eta_seconds`` None when unknown (queued, paused,
    finished, or nothing read yet)."""

    percent: int
    requests_done: int
    requests_left: int
    eta_seconds: int | None


def budget_rate() -> float:
    """Spotify requests a second the shared budget allows all workers together.

    Asks the shared limiter (``rate()``) when it can say; otherwise the configured budget.
    Never raises: a page must not fail because the limiter's store is unreachable.
    """
    try:
        rate = getattr(rate_limiter(), "rate", None)
        if callable(rate):
            value = float(rate())
            if math.isfinite(value) and value > 0:
                return value
    except Exception:  # the configured budget below is still true
        logger.debug("rate limiter did not report its rate", exc_info=True)
    return max(1.0, float(settings.SPOTIFY_RATE_LIMIT)) / RATE_WINDOW_SECONDS


def _pages(entries: int) -> int:
    return math.ceil(max(0, entries) / PAGE_SIZE)


def _step_index(step: str) -> int:
    return STEP_ORDER.index(step) if step in STEP_ORDER else 0


def scan_progress(
    *,
    status: str,
    step: str,
    tracks_total: int,
    tracks_found: int,
    artists_to_fetch: int,
    artists_fetched: int,
    requests_made: int = 0,
    elapsed_seconds: float | None = None,
    rate: float,
) -> ScanProgress:
    """The scan's progress across all steps and the time left at ``rate`` requests a second
    (or the slower rate observed over ``elapsed_seconds`` once enough requests were made)."""
    if status == "succeeded" or step == "done":
        return ScanProgress(100, requests_made, 0, None)
    index = _step_index(step)
    tracks_read = index > _step_index("fetching_tracks")
    pages_total = _pages(tracks_total)
    pages_done = pages_total if tracks_read else min(_pages(tracks_found), pages_total)
    if tracks_read or not tracks_found or not tracks_total:
        artists_total = artists_to_fetch
    else:
        # Artists so far per song read, times the songs still to read.
        share = min(1.0, tracks_found / tracks_total)
        artists_total = max(artists_to_fetch, round(artists_to_fetch / share))
    artists_done = min(artists_fetched, artists_total)
    profile_done = 1 if index > 0 else 0
    done = profile_done + pages_done + artists_done
    total = 1 + pages_total + artists_total
    left = max(0, total - done)
    if index >= _step_index("aggregating"):
        percent = AGGREGATING_PERCENT
    else:
        percent = min(AGGREGATING_PERCENT, math.floor(100 * done / total))
    eta = None
    if status == "running" and (pages_total or artists_total):
        speed = rate
        if (
            elapsed_seconds
            and elapsed_seconds >= MIN_OBSERVED_SECONDS
            and requests_made >= MIN_OBSERVED_REQUESTS
        ):
            speed = min(rate, requests_made / elapsed_seconds)
        eta = math.ceil(left / speed) if speed > 0 else None
    return ScanProgress(percent, done, left, eta)
