"""Clearing this deployment's cache without touching anyone else's keys.

``cache.clear()`` on django-redis is ``FLUSHDB``: it deletes every key of the Redis database,
including other deployments' keys (``SWEDIFY_CACHE_PREFIX``), the rate limiter's window and,
when the broker shares the database, queued Celery tasks. Nothing in Swedify calls it; this
deletes only the keys under the cache's own prefix.
"""

from __future__ import annotations

from django.core.cache import BaseCache, caches

# Keys deleted per round trip while scanning (SCAN is incremental; no KEYS on a live server).
SCAN_BATCH = 500


def cache_clear_own(cache: BaseCache | None = None) -> int:
    """Deletes the keys of this deployment's cache (default: Django's default cache), all
    versions, and returns how many; a local-memory cache, which is this process's own, is
    simply cleared (-1)."""
    cache = caches["default"] if cache is None else cache
    if not hasattr(cache, "client"):
        cache.clear()
        return -1
    client = cache.client.get_client(write=True)
    pattern = f"{_glob_escape(cache.key_prefix)}:*"
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=SCAN_BATCH):
        batch.append(key)
        if len(batch) >= SCAN_BATCH:
            deleted += client.delete(*batch)
            batch.clear()
    if batch:
        deleted += client.delete(*batch)
    return deleted


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)
