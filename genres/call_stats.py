"""Spotify call statistics: every call of every job counted per minute and endpoint, for the
operators' rate-limit page (``SpotifyCallBucket``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F, Sum, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from genres.models import SpotifyCallBucket
from genres.spotify import CallRecord

logger = logging.getLogger(__name__)

# Spotify call statistics are written at most this often per job (plus once at the end).
CALL_FLUSH_SECONDS = 5.0


@dataclass
class _Bucket:
    calls: int = 0
    ok: int = 0
    client_errors: int = 0
    server_errors: int = 0
    network_errors: int = 0
    rate_limited: int = 0
    quota_exceeded: int = 0
    total_ms: int = 0
    max_ms: int = 0


COUNTERS = (
    "calls",
    "ok",
    "client_errors",
    "server_errors",
    "network_errors",
    "rate_limited",
    "quota_exceeded",
    "total_ms",
)


def call_buckets_add(*, buckets: Mapping[tuple[datetime, str], _Bucket]) -> None:
    """Add counts to the per-minute rows with atomic increments (many workers write at once)."""
    for (minute, endpoint), bucket in buckets.items():
        increments = {name: F(name) + getattr(bucket, name) for name in COUNTERS}
        increments["max_ms"] = Greatest(F("max_ms"), Value(bucket.max_ms))
        rows = SpotifyCallBucket.objects.filter(minute=minute, endpoint=endpoint)
        if rows.update(**increments):
            continue
        try:
            with transaction.atomic():
                SpotifyCallBucket.objects.create(
                    minute=minute,
                    endpoint=endpoint,
                    max_ms=bucket.max_ms,
                    **{name: getattr(bucket, name) for name in COUNTERS},
                )
        except IntegrityError:
            # Race: another worker created this minute's row between our update and insert.
            rows.update(**increments)


class SpotifyCallRecorder:
    """Collects ``CallRecord``s in memory (thread-safe: the client calls from its threads)
    and writes them as per-minute buckets now and then, so recording costs no query per call."""

    def __init__(self, flush_every: float = CALL_FLUSH_SECONDS) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[datetime, str], _Bucket] = {}
        self._flush_every = flush_every
        self._last_flush = time.monotonic()
        self.calls = 0

    def record(self, call: CallRecord) -> None:
        now = timezone.now()
        minute = now.replace(second=0, microsecond=0)
        endpoint = str(call.endpoint)[:96]
        status = call.status or 0
        duration = max(0, int(call.duration_ms or 0))
        with self._lock:
            self.calls += 1
            bucket = self._pending.setdefault((minute, endpoint), _Bucket())
            bucket.calls += 1
            bucket.total_ms += duration
            bucket.max_ms = max(bucket.max_ms, duration)
            if not status:
                bucket.network_errors += 1
            elif status == 429:
                if (call.reason or "").upper() == "QUOTA_EXCEEDED":
                    bucket.quota_exceeded += 1
                else:
                    bucket.rate_limited += 1
            elif status >= 500:
                bucket.server_errors += 1
            elif status >= 400:
                bucket.client_errors += 1
            else:
                bucket.ok += 1

    def maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= self._flush_every:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            self._last_flush = time.monotonic()
        if not pending:
            return
        try:
            call_buckets_add(buckets=pending)
        except Exception:  # statistics must never fail a listener's job
            logger.exception("could not record Spotify call statistics")


@dataclass(frozen=True)
class LimitedShare:
    """How many calls of a period Spotify answered 429 for the rolling window (quota 429s
    are counted apart: they say nothing about the window)."""

    calls: int
    rate_limited: int

    @property
    def share(self) -> float:
        return self.rate_limited / self.calls if self.calls else 0.0


def limited_share(
    *, now: datetime | None = None, period: timedelta = timedelta(hours=1)
) -> LimitedShare:
    """The 429 share of all workers' calls in the last ``period`` (whole minutes)."""
    now = now or timezone.now()
    totals = SpotifyCallBucket.objects.filter(minute__gte=now - period).aggregate(
        calls=Sum("calls"), rate_limited=Sum("rate_limited")
    )
    return LimitedShare(calls=totals["calls"] or 0, rate_limited=totals["rate_limited"] or 0)
