"""Rate limit, quotas, injected errors and the request log.

Each piece has its own lock and holds it only for bookkeeping, never while a request sleeps,
so injected latency lets concurrent requests overlap as they do against Spotify.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from sandbox.config import QUOTA_RETRY_AFTER, RATE_WINDOW_SECONDS

ACTIONS = ("status", "write_then_status", "drop")
# By default a "write applied but answered 5xx" fault hits the playlist writes Swedify makes.
WRITE_PATHS = ("/v1/me/playlists", "/v1/playlists/*/items")
REQUEST_LOG_SIZE = 2000


def _number(data: dict[str, Any], name: str, minimum: float, maximum: float) -> float:
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    if not minimum <= value <= maximum:
        raise ValueError(f"{name} must be from {minimum:g} to {maximum:g}")
    return value


@dataclass
class ScriptedFault:
    """The next ``count`` requests matching ``method`` and ``path`` (a glob) get ``action``."""

    action: str
    count: int
    status: int
    path: str | None
    method: str | None
    retry_after: int | None

    @classmethod
    def parse(cls, data: object) -> ScriptedFault:
        if not isinstance(data, dict):
            raise ValueError("each scripted fault must be an object")
        action = data.get("action", "status")
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
        count = data.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError("count must be a positive integer")
        status = data.get("status", 502 if action == "write_then_status" else 503)
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        retry_after = data.get("retry_after")
        if retry_after is not None and (
            isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0
        ):
            raise ValueError("retry_after must be a non-negative integer")
        path = data.get("path")
        method = data.get("method")
        if path is not None and not isinstance(path, str):
            raise ValueError("path must be a glob string such as /v1/artists/*")
        if method is not None and not isinstance(method, str):
            raise ValueError("method must be a string")
        return cls(action, count, status, path, method.upper() if method else None, retry_after)

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method != method:
            return False
        if self.path is not None:
            return fnmatchcase(path, self.path)
        if self.action == "write_then_status":
            return method == "POST" and any(fnmatchcase(path, p) for p in WRITE_PATHS)
        return path.startswith("/v1/")

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "count": self.count,
            "status": self.status,
            "path": self.path,
            "method": self.method,
            "retry_after": self.retry_after,
        }


class Faults:
    """Everything that makes the sandbox misbehave on purpose.

    Rate limit: at most ``rate_limit`` admitted /v1 requests in any rolling ``rate_window``
    seconds. Rejected requests do not take a slot, so ``Retry-After`` is exact: it is when the
    oldest admitted request leaves the window. (Spotify does not say whether it counts them;
    counting them would punish a client that honours Retry-After for others' mistakes.)
    Quota: at most ``quota`` admitted requests per endpoint group until the faults are cleared
    (Spotify's quotas are daily; the sandbox never resets them by itself).
    """

    def __init__(self, seed: str, settings: dict[str, Any]) -> None:
        self._lock = threading.Lock()
        self._seed = seed
        self._initial = dict(settings)
        self.clear()

    def clear(self) -> None:
        """Back to the start-time settings, with empty windows and counters."""
        with self._lock:
            self.rate_limit = 0
            self.rate_window = RATE_WINDOW_SECONDS
            self.quota: dict[str, int] = {}
            self.quota_retry_after = QUOTA_RETRY_AFTER
            self.latency_ms = 0
            self.error_rate = 0.0
            self.scripted: list[ScriptedFault] = []
            self._window: deque[float] = deque()
            self._quota_used: Counter[str] = Counter()
            self._rng = random.Random(f"{self._seed}\x1ferrors")
        self.configure(self._initial)

    def configure(self, changes: dict[str, Any]) -> None:
        """Apply the given settings; ``scripted`` faults are appended. Raises ValueError."""
        known = {
            "rate_limit",
            "rate_window",
            "quota",
            "quota_retry_after",
            "latency_ms",
            "error_rate",
            "scripted",
        }
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        scripted_data = changes.get("scripted", [])
        if isinstance(scripted_data, dict):
            scripted_data = [scripted_data]
        if not isinstance(scripted_data, list):
            raise ValueError("scripted must be a list of faults")
        scripted = [ScriptedFault.parse(item) for item in scripted_data]
        quota = changes.get("quota")
        if quota is not None:
            if isinstance(quota, int) and not isinstance(quota, bool):
                quota = {"*": quota}
            if not isinstance(quota, dict) or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in quota.values()
            ):
                raise ValueError("quota must be an integer or an object of group -> integer")
        with self._lock:
            if "rate_limit" in changes:
                self.rate_limit = int(_number(changes, "rate_limit", 0, 10**9))
            if "rate_window" in changes:
                self.rate_window = float(_number(changes, "rate_window", 0.01, 86400))
            if quota is not None:
                self.quota = {group: limit for group, limit in quota.items() if limit}
            if "quota_retry_after" in changes:
                self.quota_retry_after = int(_number(changes, "quota_retry_after", 1, 10**7))
            if "latency_ms" in changes:
                self.latency_ms = int(_number(changes, "latency_ms", 0, 600_000))
            if "error_rate" in changes:
                self.error_rate = float(_number(changes, "error_rate", 0, 1))
            self.scripted.extend(scripted)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            in_window = sum(1 for t in self._window if t > now - self.rate_window)
            return {
                "rate_limit": self.rate_limit,
                "rate_window": self.rate_window,
                "rate_window_used": in_window,
                "quota": dict(self.quota),
                "quota_used": dict(self._quota_used),
                "quota_retry_after": self.quota_retry_after,
                "latency_ms": self.latency_ms,
                "error_rate": self.error_rate,
                "scripted": [fault.to_json() for fault in self.scripted],
            }

    def take(self, method: str, path: str, actions: tuple[str, ...]) -> ScriptedFault | None:
        """Consume one use of the first scripted fault of ``actions`` matching the request."""
        with self._lock:
            for fault in self.scripted:
                if fault.action in actions and fault.matches(method, path):
                    fault.count -= 1
                    if fault.count == 0:
                        self.scripted.remove(fault)
                    return fault
        return None

    def latency(self) -> float:
        return self.latency_ms / 1000

    def admit_rate(self) -> int | None:
        """None if the request fits in the rolling window, else the Retry-After in seconds."""
        with self._lock:
            if not self.rate_limit:
                return None
            now = time.monotonic()
            while self._window and self._window[0] <= now - self.rate_window:
                self._window.popleft()
            if len(self._window) >= self.rate_limit:
                wait = self._window[0] + self.rate_window - now
                return max(1, math.ceil(wait))
            self._window.append(now)
            return None

    def admit_quota(self, group: str) -> int | None:
        """None if the group still has quota, else the (long) Retry-After in seconds."""
        with self._lock:
            limit = self.quota.get(group, self.quota.get("*", 0))
            if not limit:
                return None
            if self._quota_used[group] >= limit:
                return self.quota_retry_after
            self._quota_used[group] += 1
            return None

    def random_error(self) -> int | None:
        """A 5xx status for a seeded ``error_rate`` share of requests, else None."""
        with self._lock:
            if not self.error_rate or self._rng.random() >= self.error_rate:
                return None
            return self._rng.choice((500, 502, 503))


@dataclass
class LogEntry:
    method: str
    path: str
    route: str
    group: str
    status: int | None  # None: the connection was dropped without an answer
    user: str | None
    time: float
    duration_ms: float

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "route": self.route,
            "group": self.group,
            "status": self.status,
            "user": self.user,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.time))
            + f".{int(self.time * 1000) % 1000:03d}Z",
            "duration_ms": round(self.duration_ms, 2),
        }


class Stats:
    """Counters over /v1 requests (and accounts requests, counted apart) plus a recent log."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.total = 0
            self.accounts = 0
            self.by_group: Counter[str] = Counter()
            self.by_route: Counter[str] = Counter()
            self.by_status: Counter[str] = Counter()
            self.rate_limited = 0
            self.quota_exceeded = 0
            self.log: deque[LogEntry] = deque(maxlen=REQUEST_LOG_SIZE)

    def record(self, entry: LogEntry, *, api: bool, limited: str | None = None) -> None:
        """``limited`` is "rate" or "quota" when the sandbox's limiter refused the request."""
        with self._lock:
            self.log.append(entry)
            if not api:
                self.accounts += 1
                return
            self.total += 1
            self.by_group[entry.group] += 1
            self.by_route[f"{entry.method} {entry.route}"] += 1
            self.by_status["dropped" if entry.status is None else str(entry.status)] += 1
            if limited == "rate":
                self.rate_limited += 1
            elif limited == "quota":
                self.quota_exceeded += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": self.total,
                "accounts": self.accounts,
                "by_group": dict(self.by_group),
                "by_route": dict(self.by_route),
                "by_status": dict(self.by_status),
                "too_many_requests": self.by_status.get("429", 0),
                "rate_limited": self.rate_limited,
                "quota_exceeded": self.quota_exceeded,
            }

    def recent(self, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            entries = list(self.log)[-limit:] if limit else []
        return [entry.to_json() for entry in entries]
