"""Start-up checks that turn bad configuration into one clear line instead of a traceback.

``guard`` runs in every server entry point (wsgi, the Celery worker); ``run_preflight`` is
what ``manage.py preflight`` and ``make run`` call before starting anything. The guard checks
what needs no network (secret, Spotify credentials or the sandbox opt-in, token keys);
preflight also reaches the database and Redis.
"""

from __future__ import annotations

import sys
from typing import NoReturn

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

EXIT_CONFIGURATION = 2
# gunicorn's arbiter stops (instead of respawning the worker forever) when a worker exits
# with this code: gunicorn.arbiter.Arbiter.WORKER_BOOT_ERROR.
EXIT_WORKER_BOOT_ERROR = 3


class ConfigurationError(Exception):
    """A setting that makes Swedify unable to run; the message is shown to the operator."""


def check_secret() -> None:
    if not settings.DEBUG and settings.SECRET_KEY == settings.DEVELOPMENT_SECRET_KEY:
        raise ConfigurationError(
            "SECRET_KEY is the development key while DEBUG is off; set SECRET_KEY "
            "(or DEBUG=true for local development)"
        )


def check_spotify() -> None:
    if settings.SPOTIFY_SANDBOX:
        return
    if not settings.SPOTIFY_CLIENT_ID:
        raise ConfigurationError(
            "no SPOTIFY_CLIENT_ID and the Spotify sandbox is off; set SPOTIFY_CLIENT_ID and "
            "SPOTIFY_CLIENT_SECRET, or SWEDIFY_SANDBOX=true to sign in through the bundled "
            "sandbox (never in production)"
        )
    if not settings.SPOTIFY_CLIENT_SECRET:
        raise ConfigurationError("SPOTIFY_CLIENT_ID is set but SPOTIFY_CLIENT_SECRET is not")


def check_token_keys() -> None:
    from genres.crypto import decrypt_token, encrypt_token

    try:
        # A round trip proves every configured key parses and the first one encrypts.
        decrypt_token(encrypt_token("swedify preflight"))
    except ImproperlyConfigured as error:
        raise ConfigurationError(str(error)) from None


def check_configuration() -> None:
    """The checks that need no network, in the order an operator would fix them."""
    check_secret()
    check_spotify()
    check_token_keys()


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
    check_configuration()
    if database:
        check_database()
    if redis:
        check_redis()


def guard(*, component: str, exit_code: int = EXIT_CONFIGURATION) -> None:
    """Stop the process with one line on stderr if its configuration cannot work.

    A setting that cannot even be read (ImproperlyConfigured from the settings module) is
    reported the same way.
    """
    try:
        check_configuration()
    except (ConfigurationError, ImproperlyConfigured) as error:
        configuration_exit(component=component, error=error, exit_code=exit_code)


def configuration_exit(*, component: str, error: BaseException, exit_code: int) -> NoReturn:
    print(f"swedify {component}: configuration error: {error}", file=sys.stderr, flush=True)
    raise SystemExit(exit_code) from None
