"""Budget benchmark: the shared Spotify budget and auto-sync, measured on the running system.

Swedify runs as in production: Celery worker processes started like ``make run`` starts them
(``benchmarks.stack``), a Redis server of the benchmark's own for the cache, the shared rate
limiter and the broker, the benchmark's database, and the Spotify sandbox in its own process,
over HTTP. Scans are started with ``genres.scans.scan_start`` (what ``POST /api/scans`` calls)
and run by the workers. Calls are counted by the sandbox (``/sandbox/stats`` and its request
log), not by the code under test. Cases (``--cases``):

* ``four`` - four listeners (500/250/150/30 liked songs, Development Mode, 10 ms latency)
  under an app-wide window of 100 requests per 30 s while Swedify is configured for 150
  (``SPOTIFY_RATE_LIMIT``), 2 worker processes; the two small ones start 35 s after the big
  ones. Targets: every result equal to the sandbox's truth, at most 5 % of calls answered
  429, wall time at most 1.3 x the least the window allows (``window_floor``), the 30-song
  scan done in less than 30 s from its start.
* ``one`` - one listener under 15 requests per 10 s (Swedify configured for 150): at most
  10 % of calls answered 429.
* ``sync`` - 1,000 listeners with auto-sync on and nothing new (``benchmarks.sync``).

Each case starts from an empty Redis (no learned rate) and fresh workers. ``--tiny`` runs
the same cases on tiny inputs in seconds (the smoke test): its figures mean nothing, its
table proves the machinery works. Run through ``python -m benchmarks budget``; exit status 1
when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    Target,
    django_setup,
    machine_line,
    print_table,
    run_in_child,
)
from benchmarks.listeners import Listener, listener_make, scan_begin
from benchmarks.stack import (
    ScanTimes,
    StackError,
    celery_workers,
    private_redis,
    redis_flush,
    scans_wait,
    worker_environment,
)

CASES = ("four", "one", "sync")
# A database of its own per run (the process id appended), so a scan or pages benchmark or
# another budget run at the same time on the same server keeps its own.
BENCH_DATABASE = "swedify_bench_budget"
# Swedify's production budget (SPOTIFY_RATE_LIMIT's default), per 30 s.
CONFIGURED_RATE_LIMIT = 150
# The sandbox keeps the last 2,000 requests; the log-based breakdowns need no more.
REQUEST_LOG_LIMIT = 2000
# The breakdown of where the calls and 429s went: one line per this many seconds.
TIMELINE_BUCKET_SECONDS = 5.0


@dataclass(frozen=True)
class FourCase:
    """The four-listener case; ``tiny()`` shrinks it for the smoke test."""

    songs: tuple[int, ...] = (500, 250, 150, 30)
    # The first ``big`` listeners start at once, the others ``late_start`` seconds later.
    big: int = 2
    late_start: float = 35.0
    rate_limit: int = 100
    rate_window: float = 30.0
    configured: int = CONFIGURED_RATE_LIMIT
    latency_ms: int = 10
    workers: int = 2
    max_429_share: float = 0.05
    wall_slack: float = 1.3
    smallest_max_seconds: float = 30.0
    timeout: float = 420.0
    offset: int = 700_000

    def tiny(self) -> FourCase:
        return replace(
            self, songs=(40, 20, 12, 6), late_start=2.0, rate_limit=20, rate_window=3.0, timeout=120
        )


@dataclass(frozen=True)
class OneCase:
    songs: int = 150
    rate_limit: int = 15
    rate_window: float = 10.0
    configured: int = CONFIGURED_RATE_LIMIT
    latency_ms: int = 10
    workers: int = 2
    max_429_share: float = 0.10
    timeout: float = 300.0
    offset: int = 800_000

    def tiny(self) -> OneCase:
        return replace(self, songs=20, rate_limit=5, rate_window=2.0, timeout=120.0)


# --- Figures ----------------------------------------------------------------------------------


def window_floor(arrivals: Sequence[tuple[float, int]], limit: int, window: float) -> float:
    """The least time a rolling window of ``limit`` requests per ``window`` seconds lets all
    the requests take: ``arrivals`` are (seconds from the start, how many requests become
    ready then). Each request is sent as early as both its readiness and the window allow,
    in order of readiness, which no schedule beats; the answer is when the last one goes."""
    ready = sorted(t for t, count in arrivals for _ in range(count))
    sent: list[float] = []
    for at in ready:
        if len(sent) >= limit:
            at = max(at, sent[-limit] + window)
        sent.append(at)
    return sent[-1] if sent else 0.0


def share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def results_exact(listeners: Sequence[Listener]) -> dict[str, list[str]]:
    """Per listener, what differs between its latest result and the sandbox's truth."""
    from benchmarks.scan import truth_mismatches
    from genres import selectors

    problems = {}
    for listener in listeners:
        payload = selectors.genres_payload(user=listener.user)
        problems[listener.spotify_id] = (
            ["no result"] if payload is None else truth_mismatches(payload, listener.truth)
        )
    return problems


def log_seconds(entry: dict[str, Any]) -> float:
    """A request log entry's time (UTC, ms) as epoch seconds."""
    stamp = datetime.strptime(entry["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return (stamp - datetime(1970, 1, 1)).total_seconds()


def calls_by_user(log: Sequence[dict[str, Any]]) -> dict[str, Counter[str]]:
    """Per sandbox user: calls answered 2xx/other and 429, from the request log."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for entry in log:
        status = entry["status"]
        kind = "429" if status == 429 else "ok" if status and status < 400 else "other"
        counts[entry["user"] or "?"][kind] += 1
    return counts


def calls_answered(counts: Counter[str]) -> int:
    return counts["ok"] + counts["other"]


def timeline(
    log: Sequence[dict[str, Any]], zero: float, bucket: float = TIMELINE_BUCKET_SECONDS
) -> list[str]:
    """Where the calls and 429s went: per ``bucket`` seconds from ``zero`` (epoch), each
    user's answered / 429 calls."""
    buckets: dict[int, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for entry in log:
        index = int((log_seconds(entry) - zero) // bucket)
        kind = "429" if entry["status"] == 429 else "ok"
        buckets[index][entry["user"] or "?"][kind] += 1
    lines = []
    for index in sorted(buckets):
        users = buckets[index]
        parts = []
        for user in sorted(users):
            refused = users[user]["429"]
            parts.append(f"{user} {users[user]['ok']}" + (f"+{refused}x429" if refused else ""))
        lines.append(f"  {index * bucket:5.0f}-{(index + 1) * bucket:<4.0f}s  " + ", ".join(parts))
    return lines


# --- Running a case ---------------------------------------------------------------------------


@dataclass
class Stack:
    """What every case shares: the sandbox, the private Redis and a folder for logs."""

    sandbox: Any
    redis_url: str
    folder: Path

    def fresh(self, *, faults: dict[str, Any]) -> None:
        """An empty Redis (no learned rate, no queue), the sandbox's faults set afresh and its
        counters zeroed."""
        redis_flush(self.redis_url)
        self.sandbox.clear_faults()
        if faults:
            self.sandbox.set_faults(**faults)
        self.sandbox.reset_stats()

    def workers(self, name: str, *, concurrency: int, rate_limit: int) -> Any:
        env = worker_environment(
            redis_url=self.redis_url,
            sandbox_url=self.sandbox.url,
            rate_limit=rate_limit,
            data_dir=self.folder / name,
        )
        return celery_workers(
            env=env, concurrency=concurrency, log_path=self.folder / f"worker-{name}.log"
        )


def case_four(stack: Stack, case: FourCase = FourCase()) -> list[Target]:
    """Four listeners at once under an app-wide window tighter than Swedify believes."""
    sandbox = stack.sandbox
    listeners = [
        listener_make(sandbox, f"four-{songs}", songs, case.offset + n * 10_000)
        for n, songs in enumerate(case.songs)
    ]
    stack.fresh(
        faults={
            "rate_limit": case.rate_limit,
            "rate_window": case.rate_window,
            "latency_ms": case.latency_ms,
        }
    )
    with stack.workers("four", concurrency=case.workers, rate_limit=case.configured) as workers:
        began = time.time()
        for listener in listeners[: case.big]:
            scan_begin(listener)
        time.sleep(max(0.0, case.late_start - (time.time() - began)))
        for listener in listeners[case.big :]:
            scan_begin(listener)
        times = scans_wait([lst.scan_id for lst in listeners], timeout=case.timeout)
        if any(t.finished is None for t in times.values()):
            print(workers.log_tail(), flush=True)
    stats = sandbox.stats()
    log = sandbox.requests(REQUEST_LOG_LIMIT)
    sandbox.clear_faults()
    return four_targets(case, listeners, times, stats, log, began)


def four_targets(
    case: FourCase,
    listeners: Sequence[Listener],
    times: dict[str, ScanTimes],
    stats: dict[str, Any],
    log: Sequence[dict[str, Any]],
    began: float,
) -> list[Target]:
    by_user = calls_by_user(log)
    problems = results_exact(listeners)
    ok_runs = all(times[lst.scan_id].status == "succeeded" for lst in listeners)
    calls, too_many = stats["total"], stats["too_many_requests"]
    # Requests answered (not 429) take window slots; each listener's become ready at its start.
    arrivals = [
        (times[lst.scan_id].started, calls_answered(by_user[lst.spotify_id])) for lst in listeners
    ]
    floor = window_floor(arrivals, case.rate_limit, case.rate_window)
    ends = [t.finished for t in times.values()]
    wall = max(ends) if None not in ends else float("inf")
    smallest = min(listeners, key=lambda lst: lst.songs)
    small_time = times[smallest.scan_id].seconds
    small_ok = times[smallest.scan_id].status == "succeeded"
    small_ratio = "n/a" if small_time is None else f"{small_time / case.smallest_max_seconds:.2f}"
    print(
        f"  sandbox window {case.rate_limit} / {case.rate_window:g} s, Swedify configured "
        f"{case.configured} / 30 s, {case.workers} worker processes",
        flush=True,
    )
    for lst in listeners:
        t = times[lst.scan_id]
        took = "not done" if t.seconds is None else f"{t.seconds:.1f} s"
        wait = "" if t.queued_seconds is None else f" (first {t.queued_seconds:.1f} s queued)"
        print(
            f"  {lst.spotify_id}: {t.status}, started {t.started:.1f} s, took {took}{wait}, "
            f"{by_user[lst.spotify_id]['ok']} calls answered + {by_user[lst.spotify_id]['429']} "
            f"answered 429",
            flush=True,
        )
    print("  calls per 5 s (answered + 429s), from the sandbox's request log:", flush=True)
    for line in timeline(log, began):
        print(line, flush=True)
    wrong = {name: found for name, found in problems.items() if found}
    return [
        Target(
            f"four listeners ({'/'.join(map(str, case.songs))} songs): results",
            f"{len(listeners) - len(wrong)} of {len(listeners)} equal to the sandbox's truth"
            + (f" ({'; '.join(f'{k}: {v[:2]}' for k, v in wrong.items())})" if wrong else ""),
            "all exact",
            "exact" if not wrong else f"{len(wrong)} wrong",
            ok_runs and not wrong,
        ),
        Target(
            "calls answered 429",
            f"{too_many} of {calls} ({share(too_many, calls):.1%})",
            f"≤ {case.max_429_share:.0%}",
            f"{share(too_many, calls) / case.max_429_share:.2f} x target",
            calls > 0 and share(too_many, calls) <= case.max_429_share,
        ),
        Target(
            "wall time",
            f"{wall:.1f} s for {calls - too_many} answered calls (least the window allows: "
            f"{floor:.1f} s)",
            f"≤ {case.wall_slack} x {floor:.1f} s = {case.wall_slack * floor:.1f} s",
            f"{wall / floor:.2f} x least" if floor else "n/a",
            ok_runs and wall <= case.wall_slack * floor,
        ),
        Target(
            f"{smallest.songs}-song scan, started {times[smallest.scan_id].started:.0f} s in",
            "not done" if small_time is None else f"{small_time:.1f} s from its start",
            f"< {case.smallest_max_seconds:g} s",
            f"{small_ratio} x target",
            small_ok and small_time is not None and small_time < case.smallest_max_seconds,
        ),
    ]


def case_one(stack: Stack, case: OneCase = OneCase()) -> list[Target]:
    """One listener under a window far tighter than Swedify believes (15 per 10 s)."""
    sandbox = stack.sandbox
    listener = listener_make(sandbox, f"one-{case.songs}", case.songs, case.offset)
    stack.fresh(
        faults={
            "rate_limit": case.rate_limit,
            "rate_window": case.rate_window,
            "latency_ms": case.latency_ms,
        }
    )
    with stack.workers("one", concurrency=case.workers, rate_limit=case.configured) as workers:
        began = time.time()
        scan_begin(listener)
        times = scans_wait([listener.scan_id], timeout=case.timeout)
        if times[listener.scan_id].finished is None:
            print(workers.log_tail(), flush=True)
    stats = sandbox.stats()
    log = sandbox.requests(REQUEST_LOG_LIMIT)
    sandbox.clear_faults()
    run = times[listener.scan_id]
    calls, too_many = stats["total"], stats["too_many_requests"]
    answered = calls - too_many
    floor = window_floor([(0.0, answered)], case.rate_limit, case.rate_window)
    took = "not done" if run.seconds is None else f"{run.seconds:.1f} s"
    print(
        f"  {listener.spotify_id}: {run.status}, took {took} for {answered} answered calls "
        f"(least the window allows: {floor:.0f} s); calls per 5 s:",
        flush=True,
    )
    for line in timeline(log, began):
        print(line, flush=True)
    wrong = results_exact([listener])[listener.spotify_id]
    return [
        Target(
            f"one listener ({case.songs} songs), {case.rate_limit} / {case.rate_window:g} s: "
            "calls answered 429",
            f"{too_many} of {calls} ({share(too_many, calls):.1%}); scan {took}",
            f"≤ {case.max_429_share:.0%}",
            f"{share(too_many, calls) / case.max_429_share:.2f} x target",
            run.status == "succeeded" and share(too_many, calls) <= case.max_429_share,
        ),
        Target(
            "its result",
            "equal to the sandbox's truth" if not wrong else f"{len(wrong)} differences",
            "exact",
            "exact" if not wrong else f"{len(wrong)} wrong",
            run.status == "succeeded" and not wrong,
        ),
    ]


CASE_TITLES = {
    "four": "Four listeners under a tighter app-wide window (2 worker processes)",
    "one": "One listener under 15 requests per 10 s",
    "sync": "Auto-sync of 1,000 listeners with nothing new",
}


def _case_functions(tiny: bool) -> dict[str, Callable[[Stack], list[Target]]]:
    from benchmarks import sync

    four, one, cycle = FourCase(), OneCase(), sync.SyncCase()
    if tiny:
        four, one, cycle = four.tiny(), one.tiny(), cycle.tiny()
    return {
        "four": lambda stack: case_four(stack, four),
        "one": lambda stack: case_one(stack, one),
        "sync": lambda stack: sync.case_sync(stack, cycle),
    }


def inner(cases: Sequence[str], *, tiny: bool = False) -> int:
    from sandbox.testing import spawn_sandbox

    all_ok = True
    with (
        tempfile.TemporaryDirectory(prefix="swedify-bench-budget-") as folder,
        spawn_sandbox(["--no-default-users"]) as sandbox,
        private_redis() as redis_url,
    ):
        # Settings are read once, at setup: this process queues scans on the private broker.
        os.environ.update(
            REDIS_URL=f"{redis_url}/0",
            CELERY_BROKER_URL=f"{redis_url}/1",
            SWEDIFY_SANDBOX="true",
            SWEDIFY_SANDBOX_URL=sandbox.url,
            SWEDIFY_DATA_DIR=str(Path(folder) / "bench"),
        )
        django_setup()
        from django.conf import settings

        database = settings.DATABASES["default"]
        print(
            f"budget benchmark{' (tiny)' if tiny else ''}: database "
            f"{database['ENGINE'].rsplit('.', 1)[-1]} ({database['NAME']}), a Redis of its own, "
            f"sandbox in its own process; {machine_line()}",
            flush=True,
        )
        stack = Stack(sandbox, redis_url, Path(folder))
        functions = _case_functions(tiny)
        for name in cases:
            started = time.perf_counter()
            try:
                targets = functions[name](stack)
            except Exception as error:  # noqa: BLE001 - one broken case must not hide the rest
                traceback.print_exc()
                sandbox.clear_faults()
                targets = [Target(name, f"crashed: {error!r}"[:300], "runs", "n/a", False)]
            all_ok &= print_table(CASE_TITLES[name], targets)
            print(f"({name}: {time.perf_counter() - started:.0f} s)", flush=True)
    print(f"budget benchmark: {'PASS' if all_ok else 'FAIL'} ({machine_line()})", flush=True)
    return 0 if all_ok else 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks budget")
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}"
    )
    parser.add_argument("--tiny", action="store_true", help="tiny inputs (the smoke test)")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    # The smoke test's own database name, so it never meets a benchmark run beside it.
    parser.add_argument(
        "--database", default=f"{BENCH_DATABASE}_{os.getpid()}", help=argparse.SUPPRESS
    )
    # Options meant for other benchmarks (the dispatcher passes them to all) are ignored.
    args, _ = parser.parse_known_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown or not cases:
        parser.error(f"--cases takes names from {', '.join(CASES)}")
    if args.inner:
        try:
            return inner(cases, tiny=args.tiny)
        except StackError as error:
            print(f"budget benchmark: could not start the system under test: {error}", flush=True)
            return 1
    argv = ["--cases", ",".join(cases), *(["--tiny"] if args.tiny else [])]
    # The child leads a process group: its sandbox, Redis and workers are stopped with it.
    return run_in_child("benchmarks.budget", argv, database=args.database)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
