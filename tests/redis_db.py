"""The Redis database that tests of Redis-backed code (the shared rate limiter) may write to."""

from __future__ import annotations

import functools
import os

import pytest
from django.conf import settings

from tests.services_guard import redis_refusal


@functools.cache
def _refusal(url: str) -> str:
    return redis_refusal(url, what="the Redis database for Redis tests")


def redis_url() -> str:
    """``SWEDIFY_TEST_REDIS_URL``, else the suite's ``REDIS_URL``, else local db 0; only a
    database marked for tests (tests/services_guard.py). These tests write only keys under
    a prefix of their own and delete them, but an unmarked database may be someone's data:
    without the marker the test is skipped with the command that marks it (CI marks its
    databases, and fails on any skip)."""
    url = (
        os.environ.get("SWEDIFY_TEST_REDIS_URL") or settings.REDIS_URL or "redis://127.0.0.1:6379/0"
    )
    refusal = _refusal(url)
    if refusal:
        pytest.skip(refusal)
    return url
