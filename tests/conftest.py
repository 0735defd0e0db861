"""Fixtures shared by the whole suite, and the guard that keeps it off services it does not own."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from tests.run_guards import *  # noqa: F403 - each run apart from others; CI runs every test
from tests.services_guard import services_refusal


def pytest_report_header(config: pytest.Config) -> list[str]:
    database = settings.DATABASES["default"]
    cache = settings.CACHES["default"]
    cache_where = cache.get("LOCATION") if "redis" in cache["BACKEND"] else "local memory"
    return [
        f"swedify database: {database['ENGINE'].rsplit('.', 1)[-1]} ({database['NAME']})",
        f"swedify cache: {cache['BACKEND'].rsplit('.', 1)[-1]} ({cache_where})",
        f"swedify broker: {urlsplit(settings.CELERY_BROKER_URL).scheme}",
    ]


def pytest_configure(config: pytest.Config) -> None:
    # Before any test (or pytest-django's database set-up) touches a service: a suite pointed
    # at production's Redis or database by an inherited environment stops here, in one line.
    refusal = services_refusal()
    if refusal:
        pytest.exit(f"swedify tests refused: {refusal}", returncode=pytest.ExitCode.USAGE_ERROR)
    # The settings create no folder on import: the suite's data folder (its SQLite test
    # database, static files) must exist before the first test uses it.
    from swedify.datadir import data_dir_prepare

    data_dir_prepare()


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    """Every test starts with a closed Redis breaker, none of the suite's cache keys and a
    fresh Spotify rate limiter, so neither an injected Redis outage, a cached value nor a
    budget learned from one test's 429s leaks into the next. Only keys under the suite's own
    prefix are deleted (the limiter's Redis keys among them), never the whole database."""
    from genres.ratelimit import rate_limiters_forget
    from swedify.cache import cache_clear_own
    from swedify.redis_breaker import BREAKER

    BREAKER.reset()
    rate_limiters_forget()
    cache_clear_own()
    yield
    BREAKER.reset()
