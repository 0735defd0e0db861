"""A hung Redis costs one socket timeout, then the cache answers at once for a few seconds."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from django.core.cache import caches

from swedify.redis_breaker import BREAKER, BreakerConnection


@pytest.fixture
def hung_redis(settings) -> Iterator[None]:
    """A server that accepts connections and never answers: the slow kind of outage."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    port = server.getsockname()[1]
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": settings.REDIS_SOCKET_TIMEOUT,
                "SOCKET_TIMEOUT": settings.REDIS_SOCKET_TIMEOUT,
                "IGNORE_EXCEPTIONS": True,
                "CONNECTION_POOL_KWARGS": {"connection_class": BreakerConnection},
            },
        }
    }
    yield
    server.close()


def timed(call) -> tuple[object, float]:
    started = time.monotonic()
    value = call()
    return value, time.monotonic() - started


def test_the_first_call_pays_one_socket_timeout_and_the_next_ones_nothing(hung_redis) -> None:
    cache = caches["default"]
    value, first = timed(lambda: cache.get("key"))
    assert value is None
    assert first < 0.6
    assert BREAKER.is_open()
    for _ in range(20):
        value, later = timed(lambda: cache.get("key"))
        assert value is None
        # Far below the 0.25 s socket timeout each call would pay without the breaker, far
        # above the microseconds it takes (a loaded machine still fits).
        assert later < 0.15


def test_writes_are_dropped_fast_while_the_breaker_is_open(hung_redis) -> None:
    cache = caches["default"]
    cache.get("warm-up")
    _, elapsed = timed(lambda: cache.set_many({f"k{i}": i for i in range(50)}))
    assert elapsed < 0.15  # one socket timeout (0.25 s) would be the wrong behaviour


def test_it_tries_redis_again_when_the_breaker_window_has_passed(
    hung_redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(BREAKER, "open_seconds", 0.2)
    cache = caches["default"]
    cache.get("key")
    assert BREAKER.is_open()
    time.sleep(0.25)
    assert not BREAKER.is_open()
    _, elapsed = timed(lambda: cache.get("key"))
    # Tried again for real: it paid the socket timeout once more.
    assert elapsed >= 0.2
