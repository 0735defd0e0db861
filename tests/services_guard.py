"""Which services the suite may use: only ones marked for tests.

A release's tests once ran with production's environment (the pipeline's quality gate), and
the suite's cache reset flushed the production Redis. The gate now scrubs its environment;
this is the second lock: the suite refuses, before it touches anything,

- a PostgreSQL database whose name does not contain ``test`` (pytest-django then works in
  ``test_<name>``, but the integration tests hand the configured URL to real workers);
- a Redis database (cache, rate limiter, or Celery broker) that does not hold the key
  ``TEST_REDIS_MARKER``, which nobody sets on a production Redis;
- an AMQP broker whose virtual host does not contain ``test``.

SQLite files, the local-memory cache and the filesystem broker live in the suite's own data
folder and are always the suite's.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from django.conf import settings

# Outside the cache's key prefix ("swedify:" by default), so the suite's cache reset between
# tests never deletes it.
TEST_REDIS_MARKER = "swedify-tests-may-use-this-db"
# The guard runs once at start; a Redis that does not answer within this is refused.
REDIS_CHECK_TIMEOUT_SECONDS = 2.0


def services_refusal() -> str:
    """Why the configured services are not the suite's to use, or "" when they are."""
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.sqlite3" and "test" not in database["NAME"]:
        return (
            f"database {database['NAME']!r} is not marked for tests (its name must contain "
            "'test'); point DATABASE_URL at a database of your own"
        )
    cache = settings.CACHES["default"]
    if "redis" in cache["BACKEND"]:
        problem = redis_refusal(cache["LOCATION"], what="REDIS_URL")
        if problem:
            return problem
    broker = settings.CELERY_BROKER_URL
    scheme = urlsplit(broker).scheme
    if scheme in {"redis", "rediss"}:
        return redis_refusal(broker, what="CELERY_BROKER_URL")
    if scheme in {"amqp", "amqps", "pyamqp"}:
        vhost = unquote(urlsplit(broker).path.lstrip("/")) or "/"
        if "test" not in vhost:
            return (
                f"CELERY_BROKER_URL's virtual host {vhost!r} is not marked for tests (its "
                "name must contain 'test')"
            )
    return ""


def redis_refusal(url: str, *, what: str) -> str:
    """Why the Redis database at ``url`` is not the suite's, or "" when it holds the marker."""
    import redis

    where = _without_password(url)
    client = redis.Redis.from_url(
        url,
        socket_timeout=REDIS_CHECK_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_CHECK_TIMEOUT_SECONDS,
    )
    try:
        marked = client.exists(TEST_REDIS_MARKER)
    except redis.RedisError as error:
        return f"{what} {where} could not be checked for the test marker ({error})"
    finally:
        client.close()
    if not marked:
        db = client.connection_pool.connection_kwargs.get("db", 0)
        return (
            f"{what} {where} is not marked for tests; on a Redis database of your own run "
            f"`redis-cli -n {db} set {TEST_REDIS_MARKER} 1`"
        )
    return ""


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return parts._replace(netloc=f"{parts.username or ''}:***@{host}{port}").geturl()
