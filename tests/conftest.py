"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings


def pytest_report_header(config: pytest.Config) -> list[str]:
    database = settings.DATABASES["default"]
    cache = settings.CACHES["default"]
    cache_where = cache.get("LOCATION") if "redis" in cache["BACKEND"] else "local memory"
    return [
        f"swedify database: {database['ENGINE'].rsplit('.', 1)[-1]} ({database['NAME']})",
        f"swedify cache: {cache['BACKEND'].rsplit('.', 1)[-1]} ({cache_where})",
        f"swedify broker: {settings.CELERY_BROKER_URL.split('://', 1)[0]}",
    ]


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    """Every test starts with a closed Redis breaker and an empty cache, so neither an
    injected Redis outage nor a cached value leaks from one test into the next."""
    from django.core.cache import cache

    from swedify.redis_breaker import BREAKER

    BREAKER.reset()
    cache.clear()
    yield
    BREAKER.reset()
