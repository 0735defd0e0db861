"""Fixtures shared by the whole suite."""

from __future__ import annotations

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
def _fresh_cache() -> None:
    """Every test starts with an empty cache so cached values never leak between tests."""
    from django.core.cache import cache

    cache.clear()
