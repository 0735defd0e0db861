"""An unreachable Redis at run time never stops pages: the cache is skipped, sessions live on
in the database."""

from __future__ import annotations

import socket
import time

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.test import Client


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def redis_down(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{unused_port()}/0",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": settings.REDIS_SOCKET_TIMEOUT,
                "SOCKET_TIMEOUT": settings.REDIS_SOCKET_TIMEOUT,
                "IGNORE_EXCEPTIONS": True,
            },
        }
    }
    # Django's setting_changed signal resets the cache handlers on both sides of the test.
    return


@pytest.mark.django_db
def test_pages_serve_while_redis_is_unreachable(redis_down, client: Client) -> None:
    started = time.monotonic()
    response = client.get("/")
    assert response.status_code == 200
    assert time.monotonic() - started < 1.0


@pytest.mark.django_db
def test_a_signed_in_session_survives_a_redis_outage(redis_down, client: Client) -> None:
    user = get_user_model().objects.create_user("someone")
    client.force_login(user)
    session_key = client.cookies["sessionid"].value
    # A fresh client with only the cookie: the session must come from the database.
    other = Client()
    other.cookies["sessionid"] = session_key
    response = other.get("/")
    assert response.status_code == 200
    assert response.wsgi_request.user == user


@pytest.mark.django_db
def test_cache_reads_are_misses_and_writes_are_dropped_while_redis_is_down(redis_down) -> None:
    cache = caches["default"]
    cache.set("key", "value")
    assert cache.get("key") is None
