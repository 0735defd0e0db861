"""The running system the budget benchmark measures: a Redis server of its own, Celery worker
processes started the way ``make run`` starts them, and the scans they run.

Everything here is started by the benchmark child (``benchmarks.budget``) and stopped by it:

* ``private_redis`` runs ``redis-server`` on a free loopback port, without persistence. Swedify's
  cache, its shared rate limiter (and whatever rate it learns) and the Celery broker live in it,
  so nothing of a developer's Redis is read or written, and ``redis_flush`` gives every case a
  limiter that has learned nothing yet.
* ``celery_workers`` runs ``celery -A swedify worker`` with the options of ``scripts/run``'s
  worker line (its queues and ``--beat``) and the concurrency a case asks for (prefork worker
  processes), against the benchmark's database, Redis and sandbox.
* ``scans_wait`` polls the scan rows until every one has ended; times come from the rows
  (``created_at`` when the listener asked, ``finished_at`` when it ended).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness import REPO_ROOT, free_port

REDIS_START_TIMEOUT = 10.0
WORKER_START_TIMEOUT = 90.0
WORKER_STOP_TIMEOUT = 20.0
POLL_SECONDS = 0.25
RUN_SCRIPT = REPO_ROOT / "scripts" / "run"
# Options of the worker line in scripts/run that shape how work is consumed; its log level,
# output and the shell around it are the benchmark's own business.
_VALUED_OPTIONS = {"-Q", "--queues", "-X", "--exclude-queues", "--pool", "-P", "-O"}
_FLAG_OPTIONS = {"--beat", "-B"}
TERMINAL_STATUSES = frozenset({"succeeded", "failed"})


class StackError(RuntimeError):
    """A part of the system under test did not start or stop as it must."""


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A ``redis-server`` on a free loopback port, no persistence; yields its base URL
    (``redis://127.0.0.1:<port>``, append ``/<db>``)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise StackError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}"
    try:
        _redis_wait(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _redis_wait(url: str, process: subprocess.Popen[bytes]) -> None:
    import redis

    deadline = time.monotonic() + REDIS_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"redis-server exited with {process.returncode}")
        with contextlib.suppress(redis.RedisError, OSError):
            client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
            try:
                if client.ping():
                    return
            finally:
                client.close()
        time.sleep(0.1)
    raise StackError(f"redis-server did not answer within {REDIS_START_TIMEOUT:g} s")


def redis_flush(url: str) -> None:
    """Empties the private Redis (every database): a case starts with no learned rate, no
    window, no queued message and no cached artist."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)
    try:
        client.flushall()
    finally:
        client.close()


def run_script_worker_options(text: str | None = None) -> list[str]:
    """The options of the ``celery -A swedify worker`` line of scripts/run that say what a
    worker consumes (queues, pool, ``--beat``), so the benchmark measures the workers ``make
    run`` starts. ``--concurrency`` is left out: each case chooses it."""
    if text is None:
        text = RUN_SCRIPT.read_text(encoding="utf-8") if RUN_SCRIPT.exists() else ""
    for line in text.splitlines():
        if "celery" not in line or " worker" not in line or line.lstrip().startswith("#"):
            continue
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:
            continue
        if "worker" not in tokens:
            continue
        options: list[str] = []
        rest = tokens[tokens.index("worker") + 1 :]
        index = 0
        while index < len(rest):
            token = rest[index]
            if token in {"&", "&&", "||", ";"} or token.startswith((">", "2>", "<")):
                break
            name, _, value = token.partition("=")
            if name in _FLAG_OPTIONS:
                options.append(name)
            elif name in _VALUED_OPTIONS:
                if value:
                    options.append(token)
                elif index + 1 < len(rest):
                    options += [token, rest[index + 1]]
                    index += 1
            index += 1
        return options
    return []


@dataclass
class Workers:
    process: subprocess.Popen[bytes]
    log_path: Path
    command: list[str]

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def worker_environment(
    *, redis_url: str, sandbox_url: str, rate_limit: int, data_dir: Path
) -> dict[str, str]:
    """The workers' environment: the child's (bench database, secret, cache prefix) with the
    private Redis as cache, limiter and broker, the sandbox, and the case's configured budget."""
    env = dict(os.environ)
    env.update(
        REDIS_URL=f"{redis_url}/0",
        CELERY_BROKER_URL=f"{redis_url}/1",
        SWEDIFY_SANDBOX="true",
        SWEDIFY_SANDBOX_URL=sandbox_url,
        SPOTIFY_RATE_LIMIT=str(rate_limit),
        SWEDIFY_DATA_DIR=str(data_dir),
        PYTHONUNBUFFERED="1",
    )
    for name in ("SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET", "SPOTIFY_API_URL"):
        env.pop(name, None)
    env.pop("SPOTIFY_ACCOUNTS_URL", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


@contextlib.contextmanager
def celery_workers(
    *, env: dict[str, str], concurrency: int, log_path: Path, extra: Sequence[str] = ()
) -> Iterator[Workers]:
    """``celery -A swedify worker --concurrency N`` with scripts/run's options; waits until it
    is ready, stops it (warm, then killed) on the way out."""
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "swedify",
        "worker",
        "--concurrency",
        str(concurrency),
        *run_script_worker_options(),
        "--without-mingle",
        "--without-gossip",
        "--loglevel",
        "INFO",
        "--hostname",
        f"bench-{os.getpid()}-{log_path.stem}@%h",
        *extra,
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    workers = Workers(process, log_path, command)
    try:
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while "ready." not in workers.log_tail(400):
            if process.poll() is not None:
                raise StackError(f"the Celery worker exited at start:\n{workers.log_tail()}")
            if time.monotonic() > deadline:
                raise StackError(f"the Celery worker was not ready:\n{workers.log_tail()}")
            time.sleep(0.2)
        yield workers
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=WORKER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class ScanTimes:
    """One scan as its row tells it; seconds are relative to ``origin`` (a common zero)."""

    scan_id: str
    status: str
    started: float
    finished: float | None
    # When a worker first took it (``started_at``): the wait before it is the queue's.
    picked: float | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.finished is None else self.finished - self.started

    @property
    def queued_seconds(self) -> float | None:
        return None if self.picked is None else self.picked - self.started


def scans_wait(
    scan_ids: Sequence[str], *, timeout: float, origin: Any | None = None
) -> dict[str, ScanTimes]:
    """Waits until every scan has ended (succeeded or failed) or ``timeout`` seconds pass;
    their times from the rows, relative to ``origin`` (a datetime; default: the earliest
    ``created_at``). A scan still active at the timeout has ``finished`` None."""
    from genres.models import Scan

    deadline = time.monotonic() + timeout
    while True:
        rows = list(
            Scan.objects.filter(pk__in=list(scan_ids)).values(
                "id", "status", "created_at", "started_at", "finished_at"
            )
        )
        ended = [row for row in rows if row["status"] in TERMINAL_STATUSES]
        if len(ended) == len(scan_ids) or time.monotonic() > deadline:
            break
        time.sleep(POLL_SECONDS)
    zero = origin or min(row["created_at"] for row in rows)
    times = {}
    for row in rows:
        finished = row["finished_at"] if row["status"] in TERMINAL_STATUSES else None
        times[str(row["id"])] = ScanTimes(
            scan_id=str(row["id"]),
            status=row["status"],
            started=(row["created_at"] - zero).total_seconds(),
            finished=None if finished is None else (finished - zero).total_seconds(),
            picked=None
            if row["started_at"] is None
            else (row["started_at"] - zero).total_seconds(),
        )
    return times
