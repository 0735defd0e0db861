"""What the scan and pages benchmarks share: a database of their own, a child process with
Django set up against it, and the PASS/FAIL table.

``python -m benchmarks scan`` (and ``pages``) never touch the developer's data: the parent
process creates ``swedify_bench`` on the PostgreSQL server of ``DATABASE_URL`` (or a temporary
SQLite file when ``DATABASE_URL`` is not PostgreSQL), runs the benchmark in a child process
whose ``DATABASE_URL`` names it (Django's settings are read once per process, and the
dispatcher may have set Django up already), and drops it afterwards. Redis keys of the run
carry a prefix of their own (``SWEDIFY_CACHE_PREFIX``) and are deleted at the end.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DATABASE = "swedify_bench"
SETTINGS_MODULE = "swedify.settings"
# The whole child run is bounded: a hang fails the benchmark instead of blocking `make bench`.
CHILD_TIMEOUT_SECONDS = 20 * 60
CONNECT_TIMEOUT = 5


@dataclass(frozen=True)
class Target:
    """One measured figure against its target; ``ratio`` is the figure over its baseline."""

    name: str
    figure: str
    target: str
    ratio: str
    ok: bool


def print_table(title: str, targets: Sequence[Target]) -> bool:
    """Prints a Markdown table of the targets (pasteable into docs/benchmarks.md); True when
    every target holds."""
    print(f"\n### {title}\n", flush=True)
    print("| figure | measured | target | ratio | result |")
    print("|---|---|---|---|---|")
    for row in targets:
        result = "PASS" if row.ok else "FAIL"
        print(f"| {row.name} | {row.figure} | {row.target} | {row.ratio} | {result} |")
    print(flush=True)
    return all(row.ok for row in targets)


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (``share`` 0.95 = p95) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _is_postgres(url: str) -> bool:
    return urlsplit(url).scheme in {"postgres", "postgresql", "pgsql"}


def _admin_connect(url: str) -> Any:
    import psycopg

    parts = urlsplit(url)
    admin_url = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))
    return psycopg.connect(admin_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT)


def _drop(connection: object, name: str) -> None:
    from psycopg import sql

    connection.execute(  # type: ignore[attr-defined]
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    )


@contextlib.contextmanager
def bench_database(name: str = BENCH_DATABASE) -> Iterator[str]:
    """A fresh, empty database for one benchmark run; yields its DATABASE_URL.

    PostgreSQL (``DATABASE_URL`` names a server): ``name`` is created on that server (dropped
    first if a crashed run left it) and dropped afterwards. Otherwise a temporary SQLite file.
    """
    url = os.environ.get("DATABASE_URL", "").strip()
    if not _is_postgres(url):
        with tempfile.TemporaryDirectory(prefix="swedify-bench-") as folder:
            yield f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
        return
    from psycopg import sql

    with _admin_connect(url) as admin:
        _drop(admin, name)
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    parts = urlsplit(url)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    finally:
        with _admin_connect(url) as admin:
            _drop(admin, name)


def child_environment(database_url: str, cache_prefix: str) -> dict[str, str]:
    """The environment of a benchmark child: the bench database, prefixed cache keys, a
    throwaway secret key (sessions signed in the child must be valid in its gunicorn)."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE=SETTINGS_MODULE,
        SWEDIFY_CACHE_PREFIX=cache_prefix,
        SECRET_KEY=f"benchmark-{secrets.token_hex(24)}",
        PYTHONUNBUFFERED="1",
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    # The bench talks only to the sandbox on loopback: never to a configured Spotify app.
    for name in ("SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET", "SPOTIFY_API_URL"):
        env.pop(name, None)
    env.pop("SPOTIFY_ACCOUNTS_URL", None)
    return env


def run_in_child(module: str, argv: Sequence[str], *, database: str = BENCH_DATABASE) -> int:
    """Runs ``python -m <module> --inner <argv>`` against a fresh bench database (``database``
    names it on PostgreSQL); its exit status (1 when it does not finish within
    CHILD_TIMEOUT_SECONDS)."""
    cache_prefix = f"swedify-bench-{secrets.token_hex(4)}"
    with bench_database(database) as database_url:
        env = child_environment(database_url, cache_prefix)
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--inner", *argv],
            cwd=REPO_ROOT,
            env=env,
            start_new_session=True,
        )
        try:
            return process.wait(timeout=CHILD_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            print(f"{module}: no result within {CHILD_TIMEOUT_SECONDS} s; stopped", flush=True)
            return 1
        finally:
            if process.poll() is None:
                # The child leads its own session: this reaches its sandbox and gunicorn too.
                os.killpg(process.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    # Workers finish their task first (the budget benchmark's take longest).
                    process.wait(timeout=30)
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            _redis_cleanup(cache_prefix)


def _redis_cleanup(prefix: str) -> None:
    """Deletes this run's keys (cache and rate limiter) from REDIS_URL, if set."""
    url = os.environ.get("REDIS_URL", "").strip()
    if not url:
        return
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    except redis.RedisError as error:
        print(f"could not delete the benchmark's Redis keys ({prefix}*): {error}", flush=True)
    finally:
        client.close()


def django_setup(*, migrate: bool = True) -> None:
    """Django against the bench database (the child's environment), migrated."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS_MODULE)
    import django
    from django.core.management import call_command

    django.setup()
    if migrate:
        call_command("migrate", verbosity=0, interactive=False)


def machine_line() -> str:
    """CPUs and load average: figures of a busy machine are read differently."""
    one, five, fifteen = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load average {one:.2f} / {five:.2f} / {fifteen:.2f}"


def cache_prefix() -> str:
    return os.environ.get("SWEDIFY_CACHE_PREFIX", "swedify-bench")
