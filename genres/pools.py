"""Bounded concurrency in a thread pool: jobs and paged reads that run ``concurrency`` at a
time while the caller handles what has finished, never more than ``AHEAD_FACTOR *
concurrency`` results ahead of it (so memory stays bounded however long the work)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, Protocol, TypeVar


class PageLike(Protocol):
    @property
    def items(self) -> Sequence[Any]: ...

    @property
    def total(self) -> int: ...


P = TypeVar("P", bound=PageLike)


# Results (pages, lookups) that may wait for the caller, in multiples of the concurrency.
AHEAD_FACTOR = 2


class Pump:
    """Runs (key, function) jobs in a pool, ``concurrency`` at a time, refilled from the
    workers' done callbacks; jobs may be added while others run. The caller takes finished
    ones with ``take`` and acknowledges each with ``handled`` (so at most
    ``AHEAD_FACTOR * concurrency`` are outstanding)."""

    def __init__(self, concurrency: int) -> None:
        self._queue: deque[tuple[Any, Callable[[Any], Any]]] = deque()
        self._concurrency = concurrency
        self._limit = AHEAD_FACTOR * concurrency
        self._changed = threading.Condition(threading.RLock())
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="spotify")
        self._finished: list[tuple[Any, Future]] = []
        self._running = 0
        self._outstanding = 0
        self._closed = False
        self._filling = False
        self.failure: BaseException | None = None

    def add(self, jobs: Iterable[tuple[Any, Callable[[Any], Any]]]) -> None:
        with self._changed:
            self._queue.extend(jobs)
            self._fill()

    def _fill(self) -> None:
        # Holds the lock. A done callback may run inline from submit: no nested filling.
        if self._filling:
            return
        self._filling = True
        try:
            while (
                self.failure is None
                and not self._closed
                and self._queue
                and self._running < self._concurrency
                and self._outstanding < self._limit
            ):
                key, function = self._queue.popleft()
                self._running += 1
                self._outstanding += 1
                future = self._pool.submit(function, key)
                future.add_done_callback(lambda done, key=key: self._done(key, done))
        finally:
            self._filling = False

    def _done(self, key: Any, future: Future) -> None:
        with self._changed:
            self._running -= 1
            self._finished.append((key, future))
            if future.exception() is not None and self.failure is None:
                self.failure = future.exception()
            self._fill()
            self._changed.notify_all()

    def take(self, *, wait: bool = True) -> list[tuple[Any, Future]]:
        """The jobs finished since the last call; with ``wait``, waits for one while any
        runs. Empty when none has finished."""
        with self._changed:
            while wait and not self._finished and self._running:
                self._changed.wait()
            finished, self._finished = self._finished, []
            return finished

    @property
    def idle(self) -> bool:
        """Nothing runs, nothing waits to be taken, and nothing more will start."""
        with self._changed:
            stopped = self.failure is not None or self._closed or not self._queue
            return stopped and not self._running and not self._finished

    def handled(self) -> None:
        with self._changed:
            self._outstanding -= 1
            self._fill()

    def fail(self, error: BaseException) -> None:
        with self._changed:
            self.failure = self.failure or error

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._queue.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


class PageFeed(Generic[P]):
    """The pages after the first one of a paged read, fetched ahead in a pool and handed over
    in order (see ``SpotifyClient.pages_in_order``). ``fetch(offset)`` reads one page;
    ``is_last(page, following)`` says whether the read ends after it (``following`` is the
    offset after the page)."""

    def __init__(
        self,
        fetch: Callable[[int], P],
        want: int,
        total: int,
        step: int,
        concurrency: int,
        *,
        is_last: Callable[[P, int], bool],
    ) -> None:
        self._fetch = fetch
        self._is_last = is_last
        self._want = want
        self._total = total
        self._step = step
        self._concurrency = concurrency
        self._ahead = AHEAD_FACTOR * concurrency
        self._changed = threading.Condition(threading.RLock())
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="spotify")
        self._futures: dict[int, Future] = {}
        self._failure: BaseException | None = None
        self._closed = False
        self._filling = False
        with self._changed:
            self._fill()

    def _fill(self) -> None:
        # Holds the lock. A done callback may run inline from submit: no nested filling.
        if self._filling or self._closed or self._failure is not None:
            return
        self._filling = True
        try:
            running = sum(1 for future in self._futures.values() if not future.done())
            end = min(self._total, self._want + self._ahead * self._step)
            for candidate in range(self._want, end, self._step):
                if running >= self._concurrency:
                    break
                if candidate not in self._futures:
                    future = self._pool.submit(self._fetch, candidate)
                    self._futures[candidate] = future
                    running += 1
                    future.add_done_callback(self._done)
        finally:
            self._filling = False

    def _done(self, future: Future) -> None:
        with self._changed:
            mine = any(future is f for f in self._futures.values())
            if mine and not future.cancelled() and future.exception() is not None:
                self._failure = self._failure or future.exception()
            self._fill()
            self._changed.notify_all()

    def next_run(self) -> tuple[list[P], bool]:
        """The consecutive pages that have arrived from the next wanted one (waits for it),
        and whether the read ends with them. Raises the first error in page order."""
        with self._changed:
            while True:
                self._fill()
                future = self._futures.get(self._want)
                if future is None:
                    raise self._failure or AssertionError("the next page was never requested")
                if future.done():
                    break
                self._changed.wait()
            run: list[P] = []
            finished = False
            while (future := self._futures.get(self._want)) is not None and future.done():
                error = future.exception()
                if error is not None:
                    if not run:
                        raise error
                    break  # hand over what came before; raised on the next call
                del self._futures[self._want]
                page = future.result()
                run.append(page)
                self._total = page.total
                self._want += len(page.items)
                if self._is_last(page, self._want):
                    finished = True
                    break
            # Offsets off the grid of the next wanted page (after a short one) are moot.
            for stale in [
                o for o in self._futures if o < self._want or (o - self._want) % self._step
            ]:
                self._futures.pop(stale).cancel()
            self._fill()
            return run, finished

    def close(self) -> None:
        with self._changed:
            self._closed = True
            for future in self._futures.values():
                future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
