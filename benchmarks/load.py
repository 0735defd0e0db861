"""A small, bounded keep-alive load generator that tags every response with its version.

Each worker thread holds one keep-alive ``http.client`` connection and sends ``GET <path>`` in
a loop until stopped, ``max_seconds`` pass or ``max_requests`` are sent in all. A 2xx answer
is tagged with the ``version`` of its JSON body; other statuses and transport errors (refused,
reset, timed out, a truncated answer) are counted separately, and a worker whose connection
broke opens a new one, which is counted too: a switch that keeps keep-alive working opens no
connection beyond the first per worker.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

DEFAULT_THREADS = 4
DEFAULT_MAX_SECONDS = 10.0
DEFAULT_MAX_REQUESTS = 40_000
REQUEST_TIMEOUT = 3.0
# After a failed request a worker pauses this long, as a real client would, so a proxy that
# answers 503 at once is not hammered through the whole request budget.
ERROR_PAUSE = 0.005
ERROR_SAMPLES = 10


@dataclass
class LoadResult:
    requests: int = 0
    ok: int = 0
    non_2xx: int = 0
    transport_errors: int = 0
    versions: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    connections_opened: int = 0
    # Per worker, the versions in the order they served it, repeats collapsed
    # (e.g. ["1.0.0", "1.0.1", "1.0.0"] for a switch and a rollback).
    version_runs: list[list[str]] = field(default_factory=list)
    # Per worker, how many answers each version gave it.
    worker_versions: list[Counter] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return self.non_2xx + self.transport_errors

    def summary(self) -> str:
        return (
            f"{self.requests} requests in {self.seconds:.2f} s: {self.ok} ok, "
            f"{self.non_2xx} non-2xx {dict(self.statuses)}, {self.transport_errors} transport "
            f"errors, versions {dict(self.versions)}, {self.connections_opened} connections; "
            f"errors: {self.error_samples[:3]}"
        )


class LoadGenerator:
    """Use as a context manager, or ``start()`` then ``stop()`` (which returns the result)."""

    def __init__(
        self,
        url: str,
        *,
        path: str = "/health",
        threads: int = DEFAULT_THREADS,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        max_requests: int = DEFAULT_MAX_REQUESTS,
        pause: float = 0.0,
    ) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = path
        self.threads = threads
        self.max_seconds = max_seconds
        self.max_requests = max_requests
        # Seconds each worker waits between requests (0: as fast as the server answers).
        self.pause = pause
        self.result = LoadResult(
            version_runs=[[] for _ in range(threads)],
            worker_versions=[Counter() for _ in range(threads)],
        )
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._started = 0.0

    def __enter__(self) -> LoadGenerator:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        self._started = time.monotonic()
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, args=(index,), daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self) -> LoadResult:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=REQUEST_TIMEOUT + 2)
        with self._lock:
            if self._started and not self.result.seconds:
                self.result.seconds = time.monotonic() - self._started
        return self.result

    def wait_for(self, version: str, *, responses: int = 50, timeout: float = 5.0) -> bool:
        """Block until ``responses`` more answers tagged ``version`` arrived, at least one of
        them on every worker's connection (False if that takes longer than ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            target = self.result.versions[version] + responses
            per_worker = [counts[version] + 1 for counts in self.result.worker_versions]

            def reached() -> bool:
                workers = self.result.worker_versions
                return self.result.versions[version] >= target and all(
                    counts[version] >= goal
                    for counts, goal in zip(workers, per_worker, strict=True)
                )

            while not reached():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    return False
                self._lock.wait(min(remaining, 0.1))
            return True

    def wait_for_errors(self, *, errors: int = 1, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while self.result.failed < errors:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    return False
                self._lock.wait(min(remaining, 0.1))
            return True

    def _should_go_on(self) -> bool:
        if self._stop.is_set():
            return False
        if time.monotonic() - self._started >= self.max_seconds:
            return False
        return self.result.requests < self.max_requests

    def _connect(self) -> http.client.HTTPConnection:
        with self._lock:
            self.result.connections_opened += 1
        return http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT)

    def _run(self, index: int) -> None:
        connection: http.client.HTTPConnection | None = None
        runs = self.result.version_runs[index]
        while self._should_go_on():
            if connection is None:
                connection = self._connect()
            status, version, error = 0, None, ""
            try:
                connection.request("GET", self.path, headers={"Connection": "keep-alive"})
                response = connection.getresponse()
                body = response.read()
                status = response.status
                if response.will_close:
                    connection.close()
                    connection = None
                if 200 <= status < 300:
                    version = str(json.loads(body).get("version", "?"))
            except (OSError, http.client.HTTPException, ValueError) as failure:
                error = f"{type(failure).__name__}: {failure}"
                connection.close()
                connection = None
            with self._lock:
                self.result.requests += 1
                if error:
                    self.result.transport_errors += 1
                    if len(self.result.error_samples) < ERROR_SAMPLES:
                        self.result.error_samples.append(error)
                else:
                    self.result.statuses[status] += 1
                    if version is None:
                        self.result.non_2xx += 1
                    else:
                        self.result.ok += 1
                        self.result.versions[version] += 1
                        self.result.worker_versions[index][version] += 1
                        if not runs or runs[-1] != version:
                            runs.append(version)
                self._lock.notify_all()
            if error or version is None:
                time.sleep(max(ERROR_PAUSE, self.pause))
            elif self.pause:
                time.sleep(self.pause)
        if connection is not None:
            connection.close()
