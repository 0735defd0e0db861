"""Settings of benchmark processes: Swedify's own, with the cache keys under a prefix of the run.

The scan and pages benchmarks run against a database of their own (``DATABASE_URL`` of the
benchmark process names it), but Redis is the developer's ``REDIS_URL``: every cache key of a
run starts with ``SWEDIFY_BENCH_CACHE_PREFIX`` so the run can empty its artist cache and clean
up after itself without touching anybody else's keys.
"""

from __future__ import annotations

import os

from swedify.settings import *  # noqa: F403
from swedify.settings import CACHES

CACHE_PREFIX = os.environ.get("SWEDIFY_BENCH_CACHE_PREFIX", "").strip()
if CACHE_PREFIX:
    CACHES["default"]["KEY_PREFIX"] = CACHE_PREFIX
