"""Pages benchmark: time to first byte of ``/genres`` under gunicorn, on a large result.

A listener's latest scan result of 10,000 tracks in 1,000 genres is inserted directly
(``ScanResult``, built with ``genres.aggregation``), the listener is signed in (a real
``cached_db`` session), and gunicorn serves Swedify as ``scripts/run`` starts it (2 workers,
4 threads) on a free loopback port with the benchmark's database and, when ``REDIS_URL`` is
set, Redis. A bounded load (``--threads`` x ``--requests`` keep-alive GETs with the session
cookie) measures TTFB: from sending the request until the status line and headers are read
(Django sends nothing before the page is rendered). ``/health`` measured the same way is the
baseline: what the stack costs without the page; the page one request at a time is the other
(what rendering costs without queueing). Target: p95 < 100 ms, no failed request.

Run through ``python -m benchmarks pages`` (a database of its own, see benchmarks.harness).
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from benchmarks.harness import (
    REPO_ROOT,
    Target,
    django_setup,
    free_port,
    machine_line,
    percentile,
    print_table,
    run_in_child,
)

TRACKS = 10_000
GENRES = 1_000
GUNICORN_WORKERS = 2
GUNICORN_THREADS = 4
LOAD_THREADS = 2
REQUESTS_PER_THREAD = 500
WARMUP_REQUESTS = 20
SINGLE_CLIENT_REQUESTS = 100
P95_TARGET_MS = 100.0
# Bounds: the whole load run, one request, gunicorn's start.
LOAD_MAX_SECONDS = 180.0
REQUEST_TIMEOUT = 10.0
START_TIMEOUT = 30.0

_WORDS_1 = ("swedish", "nordic", "dark", "melodic", "indie", "deep", "modern", "classic")
_WORDS_2 = ("dream", "synth", "post", "folk", "art", "acid", "noise", "chamber", "neo", "lo-fi")
_FAMILIES = (
    "pop",
    "rock",
    "techno",
    "hip hop",
    "jazz",
    "metal",
    "house",
    "punk",
    "soul",
    "ambient",
    "trap",
    "blues",
    "reggae",
)
# Listener data is any text: the page must render these harmlessly.
HOSTILE_GENRES = ('<script>alert("x")</script>', "rock & roll \"'`", "=cmd|' /C calc'!A0")


def genre_names(count: int = GENRES) -> list[str]:
    """``count`` distinct, family-looking genre names (a few of them hostile)."""
    names = list(HOSTILE_GENRES)
    for first in _WORDS_1:
        for second in _WORDS_2:
            for family in _FAMILIES:
                names.append(f"{first} {second} {family}")
    if len(names) < count:
        raise ValueError(f"only {len(names)} genre names can be made")
    return names[:count]


def result_payload(tracks: int = TRACKS, genres: int = GENRES) -> dict[str, Any]:
    """An aggregated result of ``tracks`` tracks in exactly ``genres`` genres (skewed counts,
    1% unclassified), made by the real aggregation code."""
    from genres.aggregation import aggregate

    names = genre_names(genres)
    artists = 2 * genres
    by_artist: dict[str, list[str]] = {}
    for j in range(artists):
        # Artist j < genres carries genre j, so every genre occurs; a second genre is drawn
        # from the first fifth, so some genres are big and most are small.
        by_artist[f"artist{j:06d}"] = [names[j % genres], names[(j * 7) % max(1, genres // 5)]]
    library = []
    for t in range(tracks):
        if t % 101 == 0:
            library.append((f"track{t:017d}", [f"nogenre{t % 37:04d}"]))
            continue
        first = f"artist{(t * 13) % artists:06d}"
        others = [f"artist{(t * 31) % artists:06d}"] if t % 7 == 0 else []
        library.append((f"track{t:017d}", [first, *others]))
    return aggregate(library, by_artist)


def listener_with_result(tracks: int = TRACKS, genres: int = GENRES) -> tuple[Any, dict]:
    """A listener whose latest successful scan has the result above; (user, payload)."""
    from django.utils import timezone

    from genres.accounts import account_link
    from genres.aggregation import summary
    from genres.models import Scan, ScanResult
    from genres.selectors import iso
    from genres.spotify import TokenSet

    now = timezone.now()
    tokens = TokenSet("bench-access", "bench-refresh", now + timedelta(hours=1), "")
    account = account_link(
        profile={"id": "bench-pages", "display_name": "Bench Listener"}, tokens=tokens
    )
    payload = result_payload(tracks, genres)
    scan = Scan.objects.create(
        user=account.user,
        status=Scan.Status.SUCCEEDED,
        step=Scan.Step.DONE,
        sources=["liked"],
        tracks_total=tracks,
        tracks_found=payload["totalTracks"],
        started_at=now - timedelta(minutes=5),
        finished_at=now - timedelta(minutes=4),
    )
    full = {"schemaVersion": ScanResult.SCHEMA_VERSION, "scanId": str(scan.pk)}
    full["cachedAt"] = iso(scan.finished_at)
    full.update(payload)
    ScanResult.objects.create(
        scan=scan,
        user=account.user,
        total_tracks=payload["totalTracks"],
        total_artists=payload["totalArtists"],
        total_genres=payload["totalGenres"],
        unclassified_count=payload["unclassified"]["count"],
        summary=summary(payload),
        payload=full,
    )
    return account.user, payload


def session_cookie(user: Any) -> str:
    """``name=value`` of a real signed-in session of ``user`` (the configured session store)."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    name = settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}"


@dataclass
class LoadResult:
    ttfb: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def ms(self, share: float) -> float:
        return percentile(self.ttfb, share) * 1000 if self.ttfb else float("inf")


def load(
    port: int,
    path: str,
    *,
    cookie: str = "",
    threads: int = LOAD_THREADS,
    requests: int = REQUESTS_PER_THREAD,
    expect: bytes = b"",
    max_seconds: float = LOAD_MAX_SECONDS,
) -> LoadResult:
    """``threads`` keep-alive clients each send ``requests`` GETs (bounded by
    ``max_seconds``); TTFB of each 200 whose body contains ``expect``."""
    result = LoadResult()
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds
    headers = {"Cookie": cookie} if cookie else {}

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
        times: list[float] = []
        failures: list[str] = []
        for _ in range(requests):
            if time.monotonic() > deadline:
                failures.append("time bound reached")
                break
            started = time.perf_counter()
            try:
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                first_byte = time.perf_counter() - started
                body = response.read()
            except (OSError, http.client.HTTPException) as error:
                failures.append(f"{type(error).__name__}: {error}")
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
                continue
            if response.status != 200 or expect not in body:
                failures.append(f"status {response.status}, {len(body)} bytes")
                continue
            times.append(first_byte)
        connection.close()
        with lock:
            result.ttfb.extend(times)
            result.failures.extend(failures)

    started = time.perf_counter()
    workers = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(max_seconds + REQUEST_TIMEOUT)
    result.seconds = time.perf_counter() - started
    return result


def gunicorn_start(port: int) -> subprocess.Popen:
    """Swedify under gunicorn as ``scripts/run`` starts it, with this process's environment
    (the bench database and cache prefix); returns once ``/health`` answers."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "swedify.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(GUNICORN_WORKERS),
            "--threads",
            str(GUNICORN_THREADS),
            "--log-level",
            "warning",
        ],
        cwd=REPO_ROOT,
        env=dict(os.environ),
    )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                connection.close()
                return process
            connection.close()
        except OSError:
            pass
        time.sleep(0.1)
    gunicorn_stop(process)
    raise RuntimeError(f"gunicorn did not answer /health within {START_TIMEOUT:g} s")


def gunicorn_stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def inner(threads: int, requests: int) -> int:
    django_setup()
    from django.conf import settings

    user, payload = listener_with_result()
    cookie = session_cookie(user)
    database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    cache = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    print(
        f"pages benchmark: /genres for {payload['totalTracks']:,} tracks in "
        f"{payload['totalGenres']:,} genres; gunicorn {GUNICORN_WORKERS} workers x "
        f"{GUNICORN_THREADS} threads, {database}, {cache}; load {threads} x {requests}; "
        f"{machine_line()}",
        flush=True,
    )
    port = free_port()
    process = gunicorn_start(port)
    try:
        row = b'class="genre-row"'
        check = load(port, "/genres", cookie=cookie, threads=1, requests=1, expect=row)
        if check.failures:
            print(f"/genres does not render the genres: {check.failures}", flush=True)
            return 1
        load(port, "/genres", cookie=cookie, threads=threads, requests=WARMUP_REQUESTS)
        load(port, "/health", threads=threads, requests=WARMUP_REQUESTS)
        # Baseline: the page's own cost, one request at a time.
        alone = load(port, "/genres", cookie=cookie, threads=1, requests=SINGLE_CLIENT_REQUESTS)
        page = load(port, "/genres", cookie=cookie, threads=threads, requests=requests, expect=row)
        health = load(port, "/health", threads=threads, requests=requests, expect=b'"ok"')
    finally:
        gunicorn_stop(process)
    p95 = page.ms(0.95)
    targets = [
        Target(
            "/genres TTFB p50 / p95 / p99",
            f"{page.ms(0.5):.1f} / {p95:.1f} / {page.ms(0.99):.1f} ms "
            f"({len(page.ttfb)} requests, {len(page.ttfb) / page.seconds:.0f} req/s)",
            f"p95 < {P95_TARGET_MS:g} ms",
            f"{p95 / P95_TARGET_MS:.2f} x target; single client p50 / p95 "
            f"{alone.ms(0.5):.1f} / {alone.ms(0.95):.1f} ms; /health p50 / p95 "
            f"{health.ms(0.5):.1f} / {health.ms(0.95):.1f} ms",
            bool(page.ttfb) and p95 < P95_TARGET_MS,
        ),
        Target(
            "failed requests",
            f"{len(page.failures)} of {threads * requests}"
            + (f" ({page.failures[0]})" if page.failures else ""),
            "0",
            "n/a",
            not page.failures and len(page.ttfb) == threads * requests,
        ),
    ]
    ok = print_table("Genres page time to first byte", targets)
    print(f"pages benchmark: {'PASS' if ok else 'FAIL'} ({machine_line()})", flush=True)
    return 0 if ok else 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks pages")
    parser.add_argument("--threads", type=int, default=LOAD_THREADS)
    parser.add_argument("--requests", type=int, default=REQUESTS_PER_THREAD, help="per thread")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    # Options meant for other benchmarks (the dispatcher passes them to all) are ignored.
    args, _ = parser.parse_known_args(argv)
    threads = max(1, min(args.threads, 16))
    requests = max(1, min(args.requests, 5_000))
    if args.inner:
        return inner(threads, requests)
    return run_in_child(
        "benchmarks.pages", ["--threads", str(threads), "--requests", str(requests)]
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
