"""Start-up checks that turn bad configuration into one clear line instead of a traceback.

``guard`` runs in every server entry point (wsgi, the Celery worker); ``run_preflight`` is
what ``manage.py preflight`` and ``make run`` call before starting anything.
"""

from __future__ import annotations

import sys

from django.conf import settings

EXIT_CONFIGURATION = 2


class ConfigurationError(Exception):
    """A setting that makes Swedify unable to run; the message is shown to the operator."""


def check_secret() -> None:
    if not settings.DEBUG and settings.SECRET_KEY == settings.DEVELOPMENT_SECRET_KEY:
        raise ConfigurationError(
            "SECRET_KEY is the development key while DEBUG is off; set SECRET_KEY "
            "(or DEBUG=true for local development)"
        )


def check_database() -> None:
    from django.db import connection

    try:
        connection.ensure_connection()
    except Exception as error:  # noqa: BLE001 - any driver error means the same to the operator
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise ConfigurationError(f"cannot reach the database: {first_line}") from None


def check_redis() -> None:
    if not settings.REDIS_URL:
        return
    import redis

    client = redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT * 4,
        socket_timeout=settings.REDIS_SOCKET_TIMEOUT * 4,
    )
    try:
        client.ping()
    except redis.RedisError as error:
        raise ConfigurationError(f"cannot reach Redis at REDIS_URL: {error}") from None
    finally:
        client.close()


def run_preflight(*, database: bool = True, redis: bool = True) -> None:
    """Raises ConfigurationError naming the first problem found."""
    check_secret()
    if database:
        check_database()
    if redis:
        check_redis()


def guard(*, component: str) -> None:
    """Stop the process with one line on stderr if its configuration cannot work."""
    try:
        check_secret()
    except ConfigurationError as error:
        print(f"swedify {component}: configuration error: {error}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIGURATION) from None
