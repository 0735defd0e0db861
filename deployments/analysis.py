"""Post-promotion analysis: watching a release after its cutover, across every proxy.

The original operations design had no automatic rollback. Like Argo Rollouts'
``postPromotionAnalysis``, a window after the cutover watches the new release through what
the proxies saw (HAProxy's cumulative counters, ``show stat`` over the runtime API:
``hrsp_5xx`` against all responses, ``rtime``) and the health probes; crossing a threshold is
a verdict with its reason, e.g. ``automatic: 5xx 31 % > 5 % over 60 s``, which the caller
turns into a switch back to the still-warm old slots.

Counters are compared with a sample taken at the start of the window, per proxy and summed,
so traffic from before the cutover never counts and a proxy restarted meanwhile (counters
back at zero) counts from its restart.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from deployments.proxy import ProxyError

# Defaults of the analysis window; per environment they are the analysis stage's params.
ANALYSIS_WINDOW_SECONDS = 5 * 60
ANALYSIS_INTERVAL_SECONDS = 5.0
MAX_5XX_SHARE = 0.05
MAX_RESPONSE_MS = 1000.0
# Fewer responses than this in the window say nothing about a 5xx share.
MIN_RESPONSES = 20


class StatSource(Protocol):
    backend: str

    def command(self, line: str) -> str: ...


@dataclass(frozen=True)
class TrafficSample:
    """One proxy's backend counters at one moment (cumulative since the proxy started)."""

    responses: int
    errors_5xx: int
    # HAProxy's average response time of the backend's last 1024 requests, in ms.
    response_ms: float


@dataclass(frozen=True)
class Thresholds:
    window_seconds: float = ANALYSIS_WINDOW_SECONDS
    interval_seconds: float = ANALYSIS_INTERVAL_SECONDS
    max_5xx_share: float = MAX_5XX_SHARE
    max_response_ms: float = MAX_RESPONSE_MS
    min_responses: int = MIN_RESPONSES


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    reason: str
    responses: int = 0
    errors_5xx: int = 0
    elapsed_seconds: float = 0.0


def traffic_sample(proxy: StatSource) -> TrafficSample:
    """The backend row of ``show stat`` (responses by class, response time)."""
    answer = proxy.command("show stat")
    rows = csv.DictReader(io.StringIO(answer.lstrip("# ")))
    for row in rows:
        if row.get("pxname") == proxy.backend and row.get("svname") == "BACKEND":
            by_class = [_int(row.get(f"hrsp_{n}xx")) for n in range(1, 6)]
            return TrafficSample(
                responses=sum(by_class),
                errors_5xx=by_class[4],
                response_ms=float(_int(row.get("rtime"))),
            )
    raise ValueError(f"HAProxy's statistics have no backend {proxy.backend!r}")


def _sample_or_zero(proxy: StatSource) -> TrafficSample:
    # A proxy down when the window opens counts from zero once it answers (as after a
    # restart): other proxies carry the traffic meanwhile.
    try:
        return traffic_sample(proxy)
    except (ProxyError, ValueError):
        return TrafficSample(0, 0, 0.0)


def _int(value: str | None) -> int:
    return int(value) if value and value.isdigit() else 0


def traffic_verdict(
    *,
    before: Sequence[TrafficSample],
    now: Sequence[TrafficSample],
    thresholds: Thresholds,
    elapsed_seconds: float,
) -> Verdict:
    """Judges the responses since ``before`` (one sample per proxy, in the same order)."""
    responses = errors = 0
    slowest = 0.0
    for start, current in zip(before, now, strict=True):
        restarted = current.responses < start.responses
        responses += current.responses - (0 if restarted else start.responses)
        errors += current.errors_5xx - (0 if restarted else start.errors_5xx)
        slowest = max(slowest, current.response_ms)
    window = f"over {elapsed_seconds:.0f} s"

    def verdict(healthy: bool, reason: str) -> Verdict:
        return Verdict(healthy, reason, responses, errors, elapsed_seconds)

    if responses >= thresholds.min_responses:
        share = errors / responses
        if share > thresholds.max_5xx_share:
            return verdict(
                False,
                f"automatic: 5xx {share * 100:.0f} % > {thresholds.max_5xx_share * 100:.0f} % "
                f"{window}",
            )
    if responses and slowest > thresholds.max_response_ms:
        return verdict(
            False,
            f"automatic: response time {slowest:.0f} ms > {thresholds.max_response_ms:.0f} ms "
            f"{window}",
        )
    return verdict(True, f"healthy: {errors} of {responses} responses 5xx {window}")


def analysis_watch(
    *,
    proxies: Sequence[StatSource],
    thresholds: Thresholds,
    health_problem: Callable[[], str | None] = lambda: None,
    should_stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Verdict:
    """Watches the proxies for the window; returns the first unhealthy verdict at once, or
    the healthy one when the window ends. ``health_problem`` names a failing health probe
    (None while healthy); ``should_stop`` ends the window early (an operator promoted)."""
    started = clock()
    before = [_sample_or_zero(proxy) for proxy in proxies]
    latest = list(before)
    while True:
        elapsed = clock() - started
        problem = health_problem()
        if problem:
            return Verdict(False, f"automatic: {problem} after {elapsed:.0f} s", 0, 0, elapsed)
        for index, proxy in enumerate(proxies):
            try:
                latest[index] = traffic_sample(proxy)
            except (ProxyError, ValueError):
                # A proxy that stopped answering is not the release's fault (the others
                # serve); its counters so far still count.
                continue
        verdict = traffic_verdict(
            before=before,
            now=latest,
            thresholds=thresholds,
            elapsed_seconds=elapsed,
        )
        if not verdict.healthy or elapsed >= thresholds.window_seconds or should_stop():
            return verdict
        sleep(min(thresholds.interval_seconds, thresholds.window_seconds - elapsed))
