"""A job row's heartbeat, written from a thread while this process runs the job."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

logger = logging.getLogger(__name__)


class Heartbeat:
    """Beats ``heartbeat_at`` on the rows of ``claimed`` every ``every`` until the block ends.

    Liveness must not depend on how long one wait for Spotify (or the shared rate budget)
    takes, so the beat runs on its own thread. It dies with the process, which is what lets
    another worker take a killed worker's job over. ``claimed`` selects the row only while the
    claim is ours, so a worker that lost its claim stops beating for it.
    """

    def __init__(self, *, claimed: QuerySet, every: timedelta, label: str) -> None:
        self.claimed = claimed
        self.every = every
        self.label = label
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat {label}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            while not self._stopped.wait(self.every.total_seconds()):
                try:
                    self.claimed.update(heartbeat_at=timezone.now())
                except Exception:  # a missed beat is retried next time; the job goes on
                    logger.exception("heartbeat of %s failed", self.label)
        finally:
            connection.close()
