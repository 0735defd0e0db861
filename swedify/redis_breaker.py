"""A circuit breaker in front of the Redis connections of Django's cache in this process.

With Redis hung or unreachable, each cache call would wait for the socket timeout. After one
failure the breaker skips Redis for BREAKER_OPEN_SECONDS, so the cache (and what uses its
connection pool: the artist cache, sessions' cache layer) answers "miss" at once and pages
stay fast; then one call tries again. The Spotify rate limiter builds its own Redis client
and has its own fallback (genres.ratelimit), so it does not go through this breaker.
"""

from __future__ import annotations

import logging
import threading
import time

from redis.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

BREAKER_OPEN_SECONDS = 5.0

logger = logging.getLogger(__name__)


class CircuitBreaker:
    def __init__(self, open_seconds: float = BREAKER_OPEN_SECONDS) -> None:
        self.open_seconds = open_seconds
        self._open_until = 0.0
        self._lock = threading.Lock()

    def is_open(self) -> bool:
        return time.monotonic() < self._open_until

    def trip(self) -> None:
        with self._lock:
            if not self.is_open():
                logger.warning("Redis failed; skipping it for %.0f s", self.open_seconds)
            self._open_until = time.monotonic() + self.open_seconds

    def reset(self) -> None:
        with self._lock:
            self._open_until = 0.0


BREAKER = CircuitBreaker()


class BreakerConnection(Connection):
    """A redis-py connection that fails fast while the breaker is open."""

    def connect_check_health(self, *args: object, **kwargs: object) -> None:
        if self._sock:
            return
        if BREAKER.is_open():
            raise RedisConnectionError("Redis is skipped for a few seconds after a failure")
        try:
            super().connect_check_health(*args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError):
            BREAKER.trip()
            raise

    def read_response(self, *args: object, **kwargs: object) -> object:
        try:
            return super().read_response(*args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError):
            BREAKER.trip()
            raise
