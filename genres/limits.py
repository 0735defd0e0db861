"""Abuse limits: how often one listener may start Spotify work, and one address sign-ins.

Every listener shares one Spotify app, so one listener firing a hundred playlist requests
spends everyone's rate budget. The limits count in the cache, per fixed window: cheap, shared
by every web process through Redis, and failing open: with the cache down nobody is
throttled (a Redis outage must not lock listeners out). Progress polling is never counted.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    name: str
    requests: int
    window_seconds: int


# Scans, playlist jobs and sync runs a listener may start per minute: far above what a person
# clicks (a request answered with the running job counts too), far below a script's loop.
JOB_STARTS = Limit("job-starts", requests=10, window_seconds=60)
# Sign-ins an address may start per minute (each writes a short-lived session row).
SIGN_IN_STARTS = Limit("sign-in-starts", requests=20, window_seconds=60)


def limit_exceeded(limit: Limit, *, who: str, now: float | None = None) -> int | None:
    """Counts one request of ``who`` against ``limit``; returns the seconds until the window
    ends when it is over the limit (the ``Retry-After``), else None. Fails open."""
    now = time.time() if now is None else now
    window = int(now // limit.window_seconds)
    key = f"limit:{limit.name}:{who}:{window}"
    try:
        # add() is atomic and only succeeds for the first request of a window. With Redis
        # down django-redis answers None to both (IGNORE_EXCEPTIONS): not counted.
        first = cache.add(key, 1, timeout=limit.window_seconds + 1)
        count = 1 if first else cache.incr(key)
    except Exception:  # a cache failure (or a key expiring in between) never refuses anyone
        logger.warning("limit %s not counted: cache unavailable", limit.name, exc_info=True)
        return None
    if not isinstance(count, int) or count <= limit.requests:
        return None
    return max(1, int((window + 1) * limit.window_seconds - now + 0.999))


def client_address(request: HttpRequest) -> str | None:
    """The client's address: the peer, or, when the peer is one of our own proxies
    (``SWEDIFY_TRUSTED_PROXIES``), the address that proxy put last in X-Forwarded-For. None
    when the request has none (a request made in-process, e.g. ``force_login``): django-axes
    stores this in an IP address column, which takes nothing else."""
    peer = request.META.get("REMOTE_ADDR") or None
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if peer is None or not forwarded or not _trusted(peer):
        return peer
    last = forwarded.split(",")[-1].strip()
    try:
        return str(ipaddress.ip_address(last))
    except ValueError:
        return peer


def _trusted(peer: str) -> bool:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in _trusted_networks())


def _trusted_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(n, strict=False) for n in settings.SWEDIFY_TRUSTED_PROXIES]
