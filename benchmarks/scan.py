"""Scan benchmark: Swedify's real scan job against the Spotify sandbox over HTTP.

Every scan is started with ``genres.scans.scan_start`` and run by the Celery task function
``genres.tasks.scan_run`` called directly (no broker), again with its token while it yields
its worker between slices, as a worker would (``scan_to_end``), against a sandbox in its own
process (``sandbox.testing.spawn_sandbox``, so its threads do not share our GIL). Requests are
counted by the sandbox (``/sandbox/stats``), not by the code under test. Phases (``--phases``):

* ``requests`` — cold cache, Development Mode: requests per scan against the formula
  ``1 + ceil(N/50) + A`` (the profile, N liked songs 50 a page, one per artist); a rescan
  with nothing new; a rescan after 10 new likes; a second listener sharing half the artists;
  a library with ~30% of its artists followed (harvested 50 per request).
* ``extended`` — Extended Quota (batch artist lookups) at 50 ms latency: requests against
  ``1 + ceil(N/50) + ceil(A/50)``, every genre compared with the sandbox's truth, wall time.
* ``budget`` — the sandbox limits R requests per 30 s and Swedify's limiter has the same
  budget: wall time against the time the budget allows for the request count, and the 429s.
* ``concurrency`` — 50 ms latency, no rate limit: the same cold scan at concurrency 1 and at
  ``SPOTIFY_CONCURRENCY``.
* ``memory`` — a 50,000-track scan in a separate worker process: its peak RSS.

Run through ``python -m benchmarks scan``: the parent makes a database of its own
(``benchmarks.harness``) and runs the phases in a child process. Exit status 1 when a target
is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import resource
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.harness import (
    REPO_ROOT,
    Target,
    cache_prefix,
    django_setup,
    machine_line,
    print_table,
    run_in_child,
)
from benchmarks.listeners import (
    PAGE,
    artist_cache_clear,
    followed_count,
    listener_create,
    listener_forget,
    listener_spec,
    sandbox_warm,
)

PHASES = ("requests", "extended", "budget", "concurrency", "memory")
# Beyond the formulas: the harvest of followed artists (1 request when none are followed) and
# of top artists (3 time ranges) is 4 requests; one more for slack.
HANDFUL = 5
# The library: 10,000 liked tracks, 3,000 artists.
TRACKS = 10_000
ARTISTS = 3_000
# Share of artists followed in the "harvestable" library.
FOLLOWED_FRACTION = 0.3
# Rescan targets.
RESCAN_NOTHING_NEW_MAX = 3
RESCAN_NEW_LIKES = 10
# Extended Quota: the wall-time target at this latency.
EXTENDED_LATENCY_MS = 50
EXTENDED_MAX_SECONDS = 3.0
# Budget phase: Swedify's production budget (SPOTIFY_RATE_LIMIT's default) in the sandbox's
# 30 s window, and a library whose scan needs a little more than one window of requests
# (1 + 6 pages + 4 harvest + 150 artists = 161): just over a window is where waiting for the
# window to roll costs most against the budget's average rate.
BUDGET_RATE_LIMIT = 150
BUDGET_WINDOW_SECONDS = 30
BUDGET_TRACKS = 300
BUDGET_ARTISTS = 150
BUDGET_SLACK = 1.15
# "Almost no 429s": at most this share of the requests (and at least one is tolerated).
MAX_429_SHARE = 0.01
# Concurrency phase: the 10:3 tracks-to-artists ratio, small enough that the
# sequential run at 50 ms per request stays under a minute (1 + 40 + 4 + 600 = 645 requests).
CONCURRENCY_LATENCY_MS = 50
CONCURRENCY_TRACKS = 2_000
CONCURRENCY_ARTISTS = 600
CONCURRENCY_MIN_SPEEDUP = 6.0
# Memory phase.
MEMORY_TRACKS = 50_000
MEMORY_ARTISTS = 10_000
MEMORY_MAX_MB = 300
MEMORY_WORKER_TIMEOUT = 10 * 60
MEMORY_MARKER = "SWEDIFY-BENCH-MEMORY "
# Far-apart catalog slices, so no phase finds another phase's artists in the cache by chance.
OFFSETS = {
    "a": 100_000,
    "c": 200_000,
    "e": 300_000,
    "w": 400_000,
    "k": 500_000,
    "m": 600_000,
}

# --- Formulas -------------------------------------------------------------------------------


def pages(count: int) -> int:
    """Requests of 50 items each needed for ``count`` items."""
    return math.ceil(count / PAGE) if count > 0 else 0


def dev_mode_bound(*, tracks: int, artists: int, harvestable: int = 0) -> int:
    """``1 + ceil(N/50) + A`` (the profile, the pages, one per artist); ``harvestable`` of the
    A artists come 50 a request from the followed artists instead of one request each."""
    harvestable = min(harvestable, artists)
    return 1 + pages(tracks) + pages(harvestable) + (artists - harvestable)


def extended_bound(*, tracks: int, artists: int) -> int:
    """``1 + ceil(N/50) + ceil(A/50)``: batch artist lookups of 50."""
    return 1 + pages(tracks) + pages(artists)


def budget_seconds(requests: int, limit: int, window: float = BUDGET_WINDOW_SECONDS) -> float:
    """The time the budget allows for ``requests``: requests / R x window."""
    return requests / limit * window


def rolling_window_floor(requests: int, limit: int, window: float) -> float:
    """The least time a rolling window of ``limit`` per ``window`` lets ``requests`` take."""
    return max(0, math.ceil(requests / limit) - 1) * window


def allowed_429s(requests: int) -> int:
    return max(1, math.floor(requests * MAX_429_SHARE))


# --- Scans ----------------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_limiter(limit: int) -> Iterator[Any]:
    """Scans in this block use a new limiter of Swedify's own kind (Redis when REDIS_URL is
    set) with ``limit`` requests per 30 s (0 = unlimited), under keys of this run: no earlier
    phase's requests sit in its window, and a developer's workers never share it."""
    import uuid

    from django.conf import settings

    from genres import ratelimit

    url = getattr(settings, "REDIS_URL", "") or ""
    if url:
        prefix = f"{cache_prefix()}:ratelimit:{uuid.uuid4().hex[:8]}"
        limiter: Any = ratelimit.RedisRateLimiter(limit, url=url, key_prefix=prefix)
    else:
        limiter = ratelimit.LocalRateLimiter(limit)
    original = ratelimit.rate_limiter
    ratelimit.rate_limiter = lambda: limiter
    try:
        yield limiter
    finally:
        ratelimit.rate_limiter = original


@contextlib.contextmanager
def no_broker() -> Iterator[list[str]]:
    """scan_start hands the scan to Celery; here nothing reaches a broker (the benchmark
    calls the task function itself). Yields the scan ids that would have been queued."""
    from genres import tasks

    queued: list[str] = []
    original = tasks.scan_run.__dict__.get("delay")
    tasks.scan_run.delay = lambda scan_id, *args, **kwargs: queued.append(str(scan_id))
    try:
        yield queued
    finally:
        if original is None:
            del tasks.scan_run.delay
        else:
            tasks.scan_run.delay = original


# A scan that yields more often than this is not making progress: the benchmark stops it.
MAX_SLICES = 10_000


@contextlib.contextmanager
def resends() -> Iterator[list[tuple[str, str, float]]]:
    """A yielded scan queues its next slice itself (``apply_async`` with its token and the
    delay it asked for); here nothing reaches a broker. Yields those messages as
    ``(scan id, token, countdown)``."""
    from genres import tasks

    messages: list[tuple[str, str, float]] = []
    original = tasks.scan_run.__dict__.get("apply_async")

    def record(
        args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None, **options: Any
    ) -> None:
        token = (kwargs or {}).get("token", "")
        messages.append((str(args[0]), str(token), float(options.get("countdown") or 0.0)))

    tasks.scan_run.apply_async = record
    try:
        yield messages
    finally:
        if original is None:
            del tasks.scan_run.apply_async
        else:
            tasks.scan_run.apply_async = original


def scan_to_end(scan_id: str) -> tuple[str, int]:
    """Runs the scan task the way a worker would: since jobs run in slices and yield their
    worker (genres.jobs), the task is called again with the yield's token, after the delay
    the scan asked for, until the scan's outcome is no longer a yield. (status, slices)."""
    from genres import tasks
    from genres.jobs import RUN_YIELDED

    with no_broker(), resends() as messages:
        status, slices = tasks.scan_run(scan_id), 1
        while status == RUN_YIELDED:
            mine = [message for message in messages if message[0] == scan_id]
            if not mine or slices >= MAX_SLICES:
                raise RuntimeError(f"scan {scan_id} yielded without a next slice ({slices})")
            messages.clear()
            _, token, countdown = mine[-1]
            time.sleep(countdown)
            status, slices = tasks.scan_run(scan_id, token=token), slices + 1
    return str(status), slices


@dataclass
class ScanRun:
    """One scan as the sandbox saw it."""

    status: str
    seconds: float
    requests: int
    by_route: dict[str, int] = field(default_factory=dict)
    too_many_requests: int = 0
    scan_id: str = ""
    artists_to_fetch: int = 0
    slices: int = 1

    def route(self, name: str) -> int:
        return self.by_route.get(name, 0)

    @property
    def artist_lookups(self) -> int:
        return self.route("GET /v1/artists/{id}")


def scan_measure(sandbox: Any, user: Any) -> ScanRun:
    """Starts a scan of the liked songs (``refresh``: never the reused result) and runs the
    task function to its end; the sandbox's request counts of that scan."""
    from genres import scans
    from genres.models import Scan

    with no_broker() as queued:
        scan, created = scans.scan_start(user=user, sources=["liked"], refresh=True)
    if not created or queued != [str(scan.pk)]:
        raise RuntimeError(f"scan_start did not queue a new scan ({scan.status})")
    sandbox.reset_stats()
    started = time.perf_counter()
    status, slices = scan_to_end(str(scan.pk))
    seconds = time.perf_counter() - started
    stats = sandbox.stats()
    scan = Scan.objects.get(pk=scan.pk)
    if status != Scan.Status.SUCCEEDED:
        print(f"  scan {scan.pk} ended {status}: {scan.error}", flush=True)
    return ScanRun(
        status=str(status),
        seconds=seconds,
        requests=stats["total"],
        by_route=stats["by_route"],
        too_many_requests=stats["too_many_requests"],
        scan_id=str(scan.pk),
        artists_to_fetch=scan.artists_to_fetch,
        slices=slices,
    )


def truth_mismatches(payload: dict[str, Any], truth: dict[str, Any]) -> list[str]:
    """What differs between a scan's genres payload and the sandbox's truth (empty: exact)."""
    problems: list[str] = []
    ours = {genre["name"]: sorted(genre["trackIds"]) for genre in payload["genres"]}
    theirs = truth["genres"]
    for name in sorted(set(ours) | set(theirs)):
        if ours.get(name) != theirs.get(name):
            problems.append(f"genre {name!r}")
    if sorted(payload["unclassified"]["trackIds"]) != truth["unclassified"]:
        problems.append("unclassified tracks")
    for key in ("totalTracks", "totalArtists", "totalGenres"):
        if payload.get(key) != truth.get(key):
            problems.append(f"{key} {payload.get(key)} != {truth.get(key)}")
    if any(genre["count"] != len(genre["trackIds"]) for genre in payload["genres"]):
        problems.append("a count differs from its track ids")
    return problems


def _requests_ratio(requests: int, bound: int) -> str:
    return f"{requests / bound:.3f} x formula" if bound else "n/a"


def _succeeded(*runs: ScanRun) -> bool:
    return all(run.status == "succeeded" for run in runs)


# --- Phases -----------------------------------------------------------------------------------


def phase_requests(
    sandbox: Any,
    *,
    tracks: int = TRACKS,
    artists: int = ARTISTS,
    prefix: str = "bench",
    offsets: dict[str, int] = OFFSETS,
) -> list[Target]:
    """Requests per scan in Development Mode, cold cache (module docstring)."""
    artist_cache_clear()
    rows: list[Target] = []
    with fresh_limiter(0):
        # A: nothing followed; the whole slice in the library, so B's overlap is exact.
        spec_a = listener_spec(
            f"{prefix}-a", tracks=tracks, artists=artists, offset=offsets["a"], exact_artists=True
        )
        user_a = listener_create(sandbox, spec_a)
        cold = scan_measure(sandbox, user_a)
        library = sandbox.truth(spec_a["id"])
        bound = dev_mode_bound(tracks=tracks, artists=library["totalArtists"])
        rows.append(
            Target(
                f"cold scan, {tracks:,} tracks / {library['totalArtists']:,} artists",
                f"{cold.requests:,} requests ({cold.artist_lookups:,} artist lookups), "
                f"{cold.seconds:.1f} s",
                f"≤ {bound:,} + {HANDFUL}",
                _requests_ratio(cold.requests, bound),
                _succeeded(cold) and cold.requests <= bound + HANDFUL,
            )
        )
        again = scan_measure(sandbox, user_a)
        rows.append(
            Target(
                "rescan, nothing new",
                f"{again.requests} requests",
                f"≤ {RESCAN_NOTHING_NEW_MAX}",
                f"{again.requests / RESCAN_NOTHING_NEW_MAX:.2f} x target",
                _succeeded(again) and again.requests <= RESCAN_NOTHING_NEW_MAX,
            )
        )
        added = sandbox.add_likes(spec_a["id"], RESCAN_NEW_LIKES, new_artists=RESCAN_NEW_LIKES)
        new_artists = len(added["new_artists"])
        newer = scan_measure(sandbox, user_a)
        limit = RESCAN_NOTHING_NEW_MAX + new_artists
        rows.append(
            Target(
                f"rescan after {RESCAN_NEW_LIKES} new likes ({new_artists} new artists)",
                f"{newer.requests} requests",
                f"≤ 3 + {new_artists}",
                f"{newer.requests / limit:.2f} x target",
                _succeeded(newer) and newer.requests <= limit,
            )
        )
        # B shares the upper half of A's slice: half its artists are in the shared cache.
        spec_b = listener_spec(
            f"{prefix}-b",
            tracks=tracks,
            artists=artists,
            offset=offsets["a"] + artists // 2,
            exact_artists=True,
        )
        user_b = listener_create(sandbox, spec_b)
        second = scan_measure(sandbox, user_b)
        artists_b = sandbox.truth(spec_b["id"])["totalArtists"]
        half = artists_b / 2
        rows.append(
            Target(
                f"second listener sharing {artists - artists // 2:,} of {artists_b:,} artists",
                f"{second.artist_lookups:,} artist lookups ({second.requests:,} requests)",
                f"≤ {half:,.0f} (half of {artists_b:,})",
                f"{second.artist_lookups / artists_b:.3f} x cold lookups",
                _succeeded(second) and second.artist_lookups <= half,
            )
        )
        # C: about 30% of the artists followed, harvested 50 a request; cold cache again.
        artist_cache_clear()
        spec_c = listener_spec(
            f"{prefix}-c",
            tracks=tracks,
            artists=artists,
            offset=offsets["c"],
            followed=FOLLOWED_FRACTION,
            exact_artists=True,
        )
        listener_c = listener_create(sandbox, spec_c)
        followed = followed_count(sandbox, spec_c["id"])
        harvested = scan_measure(sandbox, listener_c)
        artists_c = sandbox.truth(spec_c["id"])["totalArtists"]
        bound_c = dev_mode_bound(tracks=tracks, artists=artists_c, harvestable=followed)
        plain_c = dev_mode_bound(tracks=tracks, artists=artists_c)
        rows.append(
            Target(
                f"cold scan, {followed:,} of {artists_c:,} artists followed "
                f"({followed / artists_c:.0%})",
                f"{harvested.requests:,} requests ({harvested.artist_lookups:,} lookups, "
                f"{harvested.route('GET /v1/me/following')} followed pages)",
                f"≤ {bound_c:,} + {HANDFUL}",
                f"{_requests_ratio(harvested.requests, bound_c)}; "
                f"{harvested.requests / plain_c:.3f} x no-harvest formula",
                _succeeded(harvested) and harvested.requests <= bound_c + HANDFUL,
            )
        )
    return rows


def phase_extended(
    sandbox: Any,
    *,
    tracks: int = TRACKS,
    artists: int = ARTISTS,
    latency_ms: int = EXTENDED_LATENCY_MS,
    prefix: str = "bench",
    offset: int = OFFSETS["e"],
    max_seconds: float = EXTENDED_MAX_SECONDS,
) -> list[Target]:
    """Extended Quota: batch lookups, exact genres, wall time at ``latency_ms``."""
    from genres import selectors

    artist_cache_clear()
    sandbox.clear_faults()
    sandbox.configure(extended_quota=True)
    try:
        spec = listener_spec(f"{prefix}-e", tracks=tracks, artists=artists, offset=offset)
        user = listener_create(sandbox, spec)
        truth = sandbox_warm(sandbox, spec["id"])
        sandbox.set_faults(latency_ms=latency_ms)
        with fresh_limiter(0):
            run = scan_measure(sandbox, user)
    finally:
        sandbox.clear_faults()
        sandbox.configure(extended_quota=False)
        artist_cache_clear()
    payload = selectors.genres_payload(user=user)
    problems = ["no result"] if payload is None else truth_mismatches(payload, truth)
    bound = extended_bound(tracks=tracks, artists=truth["totalArtists"])
    return [
        Target(
            f"Extended Quota scan, {tracks:,} tracks / {truth['totalArtists']:,} artists",
            f"{run.requests} requests ({run.route('GET /v1/artists')} batch lookups of "
            f"≤ 50, {run.artist_lookups} single)",
            f"≤ {bound} + {HANDFUL}",
            _requests_ratio(run.requests, bound),
            _succeeded(run) and run.requests <= bound + HANDFUL,
        ),
        Target(
            "genres equal to the sandbox's truth",
            f"{truth['totalGenres']:,} genres, {len(problems)} differences"
            + (f" ({', '.join(problems[:3])})" if problems else ""),
            "0 differences",
            "exact" if not problems else f"{len(problems)} wrong",
            _succeeded(run) and not problems,
        ),
        Target(
            f"Extended Quota wall time at {latency_ms} ms latency",
            f"{run.seconds:.2f} s",
            f"< {max_seconds:g} s",
            f"{run.seconds / max_seconds:.2f} x target; "
            f"{run.seconds * 1000 / max(1, run.requests):.0f} ms per request",
            _succeeded(run) and run.seconds < max_seconds,
        ),
    ]


def phase_budget(
    sandbox: Any,
    *,
    rate_limit: int = BUDGET_RATE_LIMIT,
    tracks: int = BUDGET_TRACKS,
    artists: int = BUDGET_ARTISTS,
    prefix: str = "bench",
    offset: int = OFFSETS["w"],
) -> list[Target]:
    """Wall time under a rate limit shared by the sandbox and Swedify's limiter."""
    artist_cache_clear()
    spec = listener_spec(f"{prefix}-w", tracks=tracks, artists=artists, offset=offset)
    user = listener_create(sandbox, spec)
    sandbox.clear_faults()  # an empty window
    sandbox.set_faults(rate_limit=rate_limit, rate_window=BUDGET_WINDOW_SECONDS)
    try:
        with fresh_limiter(rate_limit):
            run = scan_measure(sandbox, user)
    finally:
        sandbox.clear_faults()
    admitted = run.requests - run.too_many_requests
    allowed = budget_seconds(admitted, rate_limit)
    floor = rolling_window_floor(admitted, rate_limit, BUDGET_WINDOW_SECONDS)
    max_429 = allowed_429s(admitted)
    return [
        Target(
            f"wall time, {rate_limit} requests / {BUDGET_WINDOW_SECONDS} s",
            f"{run.seconds:.1f} s for {admitted} requests (rolling-window least {floor:.0f} s)",
            f"≤ {BUDGET_SLACK} x {allowed:.1f} s = {BUDGET_SLACK * allowed:.1f} s",
            f"{run.seconds / allowed:.3f} x budget time",
            _succeeded(run) and run.seconds <= BUDGET_SLACK * allowed,
        ),
        Target(
            "429s provoked",
            f"{run.too_many_requests}",
            f"≤ {max_429} ({MAX_429_SHARE:.0%} of requests)",
            f"{run.too_many_requests / max(1, admitted):.2%} of requests",
            run.too_many_requests <= max_429,
        ),
    ]


def phase_concurrency(
    sandbox: Any,
    *,
    tracks: int = CONCURRENCY_TRACKS,
    artists: int = CONCURRENCY_ARTISTS,
    latency_ms: int = CONCURRENCY_LATENCY_MS,
    prefix: str = "bench",
    offset: int = OFFSETS["k"],
    min_speedup: float = CONCURRENCY_MIN_SPEEDUP,
) -> list[Target]:
    """The same cold scan at concurrency 1 and at SPOTIFY_CONCURRENCY, at ``latency_ms``."""
    from django.conf import settings
    from django.test import override_settings

    concurrency = int(settings.SPOTIFY_CONCURRENCY)
    spec = listener_spec(f"{prefix}-k", tracks=tracks, artists=artists, offset=offset)
    user = listener_create(sandbox, spec)
    sandbox_warm(sandbox, spec["id"])  # both scans read a library the sandbox has derived
    sandbox.clear_faults()
    sandbox.set_faults(latency_ms=latency_ms)
    try:
        with fresh_limiter(0):
            artist_cache_clear()
            with override_settings(SPOTIFY_CONCURRENCY=1):
                sequential = scan_measure(sandbox, user)
            listener_forget(user)
            artist_cache_clear()
            concurrent = scan_measure(sandbox, user)
    finally:
        sandbox.clear_faults()
    speedup = sequential.seconds / concurrent.seconds
    return [
        Target(
            f"concurrency {concurrency} vs 1 at {latency_ms} ms latency "
            f"({tracks:,} tracks / {artists:,} artists)",
            f"{concurrent.seconds:.1f} s vs {sequential.seconds:.1f} s "
            f"({concurrent.requests} vs {sequential.requests} requests)",
            f"≥ {min_speedup:g}x faster",
            f"{speedup:.2f}x (at most {concurrency}x)",
            _succeeded(sequential, concurrent)
            and concurrent.requests == sequential.requests
            and speedup >= min_speedup,
        )
    ]


def phase_memory(
    sandbox: Any,
    *,
    tracks: int = MEMORY_TRACKS,
    artists: int = MEMORY_ARTISTS,
    prefix: str = "bench",
    offset: int = OFFSETS["m"],
    max_mb: float = MEMORY_MAX_MB,
) -> list[Target]:
    """A scan of ``tracks`` in a worker process of its own; its peak RSS (ru_maxrss)."""
    artist_cache_clear()
    spec = listener_spec(
        f"{prefix}-m", tracks=tracks, artists=artists, offset=offset, followed=0.3, top=0.2
    )
    user = listener_create(sandbox, spec)
    command = [
        sys.executable,
        "-m",
        "benchmarks.scan",
        "--memory-worker",
        str(user.pk),
        sandbox.url,
    ]
    try:
        answer = subprocess.run(
            command,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=MEMORY_WORKER_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return [
            Target(
                "worker peak RSS",
                f"no result within {MEMORY_WORKER_TIMEOUT} s",
                f"< {max_mb} MB",
                "n/a",
                False,
            )
        ]
    lines = [ln for ln in answer.stdout.splitlines() if ln.startswith(MEMORY_MARKER)]
    if answer.returncode or not lines:
        print(answer.stdout[-2000:], answer.stderr[-4000:], sep="\n", flush=True)
        return [Target("worker peak RSS", "worker failed", f"< {max_mb} MB", "n/a", False)]
    data = json.loads(lines[-1][len(MEMORY_MARKER) :])
    peak_mb = data["peak_kb"] / 1024
    idle_mb = data["idle_kb"] / 1024
    return [
        Target(
            f"worker peak RSS, {tracks:,}-track scan ({data['artists']:,} artists)",
            f"{peak_mb:.0f} MB (idle worker {idle_mb:.0f} MB; scan {data['seconds']:.1f} s, "
            f"{data['requests']:,} requests, {data['status']})",
            f"< {max_mb} MB",
            f"{peak_mb / max_mb:.2f} x target",
            data["status"] == "succeeded" and peak_mb < max_mb,
        )
    ]


def memory_worker(user_pk: int, sandbox_url: str) -> int:
    """The memory phase's worker process: one scan, then its own peak RSS as a JSON line."""
    django_setup(migrate=False)
    from django.contrib.auth import get_user_model
    from django.test import override_settings

    from genres import scans
    from genres.models import Scan, ScanResult

    user = get_user_model().objects.get(pk=user_pk)
    # What a worker holds before its first task: Django, the app's modules, a connection.
    idle_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with override_settings(**_sandbox_settings(sandbox_url)), fresh_limiter(0):
        started = time.perf_counter()
        with no_broker():
            scan, _ = scans.scan_start(user=user, sources=["liked"], refresh=True)
        status, _ = scan_to_end(str(scan.pk))
        seconds = time.perf_counter() - started
    scan = Scan.objects.get(pk=scan.pk)
    result = ScanResult.objects.filter(scan_id=scan.pk).only("total_artists").first()
    data = {
        "status": str(status),
        "seconds": seconds,
        "requests": scan.requests_made,
        "artists": result.total_artists if result else 0,
        "idle_kb": idle_kb,
        "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    print(MEMORY_MARKER + json.dumps(data), flush=True)
    return 0


# --- Running ----------------------------------------------------------------------------------


def _sandbox_settings(url: str) -> dict[str, Any]:
    from sandbox.config import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

    return {
        "SPOTIFY_CLIENT_ID": DEFAULT_CLIENT_ID,
        "SPOTIFY_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
        "SPOTIFY_ACCOUNTS_URL": url,
        "SPOTIFY_API_URL": f"{url}/v1",
    }


PHASE_TITLES = {
    "requests": "Spotify requests per scan (Development Mode, cold cache)",
    "extended": "Extended Quota mode",
    "budget": "Wall time within the rate-limit budget",
    "concurrency": "Concurrency hides latency",
    "memory": "Worker memory",
}


def inner(phases: Sequence[str]) -> int:
    django_setup()
    from django.conf import settings
    from django.test import override_settings

    from sandbox.testing import spawn_sandbox

    functions = {
        "requests": phase_requests,
        "extended": phase_extended,
        "budget": phase_budget,
        "concurrency": phase_concurrency,
        "memory": phase_memory,
    }
    database = settings.DATABASES["default"]
    cache = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    print(
        f"scan benchmark: database {database['ENGINE'].rsplit('.', 1)[-1]} "
        f"({database['NAME']}), cache {cache}, SPOTIFY_CONCURRENCY "
        f"{settings.SPOTIFY_CONCURRENCY}, sandbox in its own process; {machine_line()}",
        flush=True,
    )
    all_ok = True
    with (
        spawn_sandbox(["--no-default-users"]) as sandbox,
        override_settings(**_sandbox_settings(sandbox.url)),
    ):
        for phase in phases:
            started = time.perf_counter()
            try:
                targets = functions[phase](sandbox)
            except Exception as error:  # noqa: BLE001 - one broken phase must not hide the rest
                traceback.print_exc()
                sandbox.clear_faults()
                targets = [Target(phase, f"crashed: {error!r}"[:200], "runs", "n/a", False)]
            all_ok &= print_table(PHASE_TITLES[phase], targets)
            print(f"({phase}: {time.perf_counter() - started:.0f} s)", flush=True)
    print(f"scan benchmark: {'PASS' if all_ok else 'FAIL'} ({machine_line()})", flush=True)
    return 0 if all_ok else 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks scan")
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated subset of {','.join(PHASES)}",
    )
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--memory-worker", nargs=2, help=argparse.SUPPRESS)
    # Options meant for other benchmarks (the dispatcher passes them to all) are ignored.
    args, _ = parser.parse_known_args(argv)
    if args.memory_worker:
        return memory_worker(int(args.memory_worker[0]), args.memory_worker[1])
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = [p for p in phases if p not in PHASES]
    if unknown or not phases:
        parser.error(f"--phases takes names from {', '.join(PHASES)}")
    if args.inner:
        return inner(phases)
    return run_in_child("benchmarks.scan", ["--phases", ",".join(phases)])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
