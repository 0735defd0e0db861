"""The overlap window's harness: two releases (two gunicorn slots, each with its Celery worker
started from its own source folder) on one PostgreSQL database, one Redis and the bundled
Spotify sandbox, and one listener's browser talking to both.

"The new release" is the committed code (``git archive`` of HEAD) with a small, deterministic
patch applied to a copy: the artist cache value and the genres result one schema version
higher, each with an added field, an added checkpoint field and an added field in the scan
JSON. A patch whose anchor is not
found exactly once stops the test, so a restructured code base never silently runs two copies
of the same release.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from deployments.slots import SlotProcess, slot_log_file, slot_start, slot_stop
from sandbox.testing import RunningSandbox

OLD_VERSION = "2026.12.0-old"
NEW_VERSION = "2026.12.1-new"
BAD_VERSION = "2026.12.1-incompatible"
WORKER_START_TIMEOUT = 45.0
WORKER_STOP_TIMEOUT = 20.0
# What a line of a slot's or a worker's log must not hold: something raised or was logged as
# an error, or Redis failed (a miss then is the machine's load, not a release unable to read
# the other's values: the test says so instead of reporting a cache miss storm). Warnings such
# as "Not Found" are expected answers, not failures.
LOG_PROBLEM = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b|Redis failed|cache (read|write) failed")
# Celery's line for a finished task: "Task <name>[<id>] succeeded in 0.6s: 'paused'".
TASK_OUTCOME = re.compile(r"\] succeeded in [0-9.]+s: '(\w+)'")


# --- Releases -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    """Replace ``anchor`` (which must occur exactly once among the release's ``genres/*.py``)
    with ``replacement``."""

    anchor: str
    replacement: str


# The new release: the artist cache value at schema version 2 with an added field; the scan
# checkpoint with an added field (which release attempted it) and that field in the scan JSON;
# the stored genres result (GET /api/genres) at schema version 2 with an added field. Readers of
# the new release default what an old writer left out.
CACHE_V2 = Edit("CACHE_VERSION = 1\n", "CACHE_VERSION = 2\n")
CACHE_ADDED_FIELD = Edit(
    '        "at": info.fetched_at.isoformat(),\n    }',
    '        "at": info.fetched_at.isoformat(),\n        "genreCount": len(info.genres),\n    }',
)
CHECKPOINT_ADDED_FIELD = Edit(
    '        self.checkpoint.setdefault("sources", {})\n',
    '        self.checkpoint.setdefault("sources", {})\n'
    "        from django.conf import settings as release\n"
    "\n"
    '        self.checkpoint.setdefault("attemptsBy", []).append(release.SWEDIFY_VERSION)\n',
)
SCAN_JSON_ADDED_FIELD = Edit(
    '        "createdAt": iso(scan.created_at),\n',
    '        "createdAt": iso(scan.created_at),\n'
    '        "attemptsBy": list((scan.checkpoint or {}).get("attemptsBy", [])),\n',
)
RESULT_V2 = Edit("    SCHEMA_VERSION = 1\n", "    SCHEMA_VERSION = 2\n")
RESULT_ADDED_FIELD = Edit(
    '        full["cachedAt"] = iso(now)\n',
    '        full["cachedAt"] = iso(now)\n        full["artistsKnown"] = len(infos)\n',
)
NEW_RELEASE = (
    CACHE_V2,
    CACHE_ADDED_FIELD,
    CHECKPOINT_ADDED_FIELD,
    SCAN_JSON_ADDED_FIELD,
    RESULT_V2,
    RESULT_ADDED_FIELD,
)

# The negative control: the same release, except that it writes an artist's genres as one
# string under the same key (its own reader copes; the old one cannot).
GENRES_AS_STRING = Edit(
    '        "genres": list(info.genres),\n',
    '        "genres": ", ".join(info.genres),\n',
)
GENRES_STRING_READER = Edit(
    "    if not isinstance(genres, list):\n        return None\n",
    "    if isinstance(genres, str):\n"
    '        genres = genres.split(", ") if genres else []\n'
    "    if not isinstance(genres, list):\n"
    "        return None\n",
)
INCOMPATIBLE_RELEASE = (*NEW_RELEASE, GENRES_AS_STRING, GENRES_STRING_READER)


def release_patched(*, source: Path, target: Path, edits: tuple[Edit, ...]) -> Path:
    """A copy of the release at ``source`` in ``target`` with ``edits`` applied."""
    shutil.copytree(source, target)
    files = sorted(p for p in (target / "genres").glob("*.py"))
    for edit in edits:
        hits = [(p, p.read_text().count(edit.anchor)) for p in files]
        hits = [(p, n) for p, n in hits if n]
        assert [n for _, n in hits] == [1], (
            f"the new release's patch needs {edit.anchor!r} exactly once in genres/*.py of "
            f"the release; found {[(p.name, n) for p, n in hits]}"
        )
        path = hits[0][0]
        path.write_text(path.read_text().replace(edit.anchor, edit.replacement))
    for path in files:
        subprocess.run([sys.executable, "-m", "py_compile", str(path)], check=True)
    return target


# --- Processes ----------------------------------------------------------------------------


@dataclass
class Release:
    version: str
    source: Path
    slot: SlotProcess
    log_dir: Path
    worker: subprocess.Popen | None = None
    worker_logs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.slot.port}"

    def worker_start(self, env: dict[str, str]) -> None:
        """``celery -A swedify worker`` from this release's source folder."""
        assert self.worker is None, f"{self.version}'s worker already runs"
        log_path = self.log_dir / f"worker-{self.version}-{len(self.worker_logs)}.log"
        self.worker_logs.append(log_path)
        with log_path.open("w") as log:
            self.worker = subprocess.Popen(
                [
                    sys.executable, "-m", "celery", "-A", "swedify", "worker",
                    "--pool", "solo", "--without-mingle", "--without-gossip",
                    "--loglevel", "INFO", "--hostname", f"{self.version}@overlap",
                ],
                cwd=self.source, env={**env, "SWEDIFY_VERSION": self.version},
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while time.monotonic() < deadline:
            if "ready." in log_path.read_text(errors="replace"):
                return
            assert self.worker.poll() is None, log_path.read_text(errors="replace")
            time.sleep(0.2)
        raise AssertionError(f"{self.version}'s worker did not start:\n{log_path.read_text()}")

    def worker_stop(self) -> None:
        """Warm shutdown (the worker is idle by then), a kill after a bound."""
        if self.worker is None:
            return
        worker, self.worker = self.worker, None
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=WORKER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(timeout=10)

    def task_outcomes(self) -> list[list[str]]:
        """What each of this release's workers' tasks returned, per worker, in order."""
        return [TASK_OUTCOME.findall(path.read_text(errors="replace")) for path in self.worker_logs]

    def log_problems(self) -> list[str]:
        """Lines of this release's slot and worker logs that say something raised."""
        paths = [slot_log_file(environment=self.slot.environment, slot=self.slot.slot)]
        problems = []
        for path in [*paths, *self.worker_logs]:
            text = path.read_text(errors="replace") if path.exists() else ""
            problems += [
                f"{path.name}: {line}" for line in text.splitlines() if LOG_PROBLEM.search(line)
            ]
        return problems


def process_env(*, database_url: str, sandbox: RunningSandbox, secret_key: str) -> dict[str, str]:
    """What both releases' web and worker processes share: the database, Redis (inherited
    REDIS_URL), the secret (sessions and tokens), the sandbox; production-like (DEBUG off) but
    over plain HTTP on loopback."""
    env = {**os.environ}
    env.pop("PYTHONPATH", None)  # the release's own code, never this checkout's
    env.pop("DEBUG", None)
    env.update(
        DATABASE_URL=database_url,
        SECRET_KEY=secret_key,
        SESSION_COOKIE_SECURE="false",
        SWEDIFY_SANDBOX="true",
        SWEDIFY_SANDBOX_URL=sandbox.url,
        SPOTIFY_ACCOUNTS_URL=sandbox.accounts_url,
        SPOTIFY_API_URL=sandbox.api_url,
        SPOTIFY_RATE_LIMIT="1000000",
    )
    return env


@contextlib.contextmanager
def running_release(
    *,
    environment: str,
    slot: str,
    version: str,
    source: Path,
    port: int,
    env: dict[str, str],
    log_dir: Path,
) -> Iterator[Release]:
    """A release's gunicorn slot on ``port``; its worker is started by the test when it wants
    that release to run jobs. Both are stopped on the way out."""
    try:
        process = slot_start(
            environment=environment,
            slot=slot,
            port=port,
            version=version,
            source_dir=source,
            env=env,
        )
        release = Release(version=version, source=source, slot=process, log_dir=log_dir)
        try:
            yield release
        finally:
            release.worker_stop()
    finally:
        slot_stop(environment=environment, slot=slot)


# --- The listener's browser ---------------------------------------------------------------


class Browser:
    """One listener's browser (one cookie jar, so one session) talking to either release."""

    def __init__(self) -> None:
        self.session = requests.Session()
        self.session.trust_env = False  # loopback only, never through a proxy

    def get(self, release: Release, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(f"{release.url}{path}", timeout=15, **kwargs)

    def call(self, release: Release, method: str, path: str, body: Any = None) -> requests.Response:
        """A JSON API call with the CSRF token this release hands out."""
        token = self.get(release, "/session").json()["csrfToken"]
        return self.session.request(
            method,
            f"{release.url}{path}",
            json=body,
            headers={"X-CSRFToken": token},
            timeout=15,
        )

    def sign_in(
        self, *, start: Release, finish: Release, sandbox: RunningSandbox, user: str
    ) -> None:
        """Start the Spotify sign-in on ``start`` and land its callback on ``finish``: the
        pending sign-in (state, PKCE verifier) lives in the session both read."""
        begun = self.get(start, "/auth/spotify", allow_redirects=False)
        assert begun.status_code == 302, begun.text
        authorize = urlsplit(begun.headers["Location"])
        assert authorize.geturl().startswith(f"{sandbox.accounts_url}/authorize")
        query = [
            *parse_qsl(authorize.query),
            ("sandbox_user", user),
            ("sandbox_decision", "approve"),
        ]
        consent = self.session.get(
            urlunsplit(authorize._replace(query=urlencode(query))),
            allow_redirects=False,
            timeout=15,
        )
        assert consent.status_code == 302, consent.text
        callback = urlsplit(consent.headers["Location"])
        assert callback.port == start.slot.port  # the redirect URI both releases register
        landed = self.get(finish, f"{callback.path}?{callback.query}", allow_redirects=False)
        assert landed.status_code == 302, landed.text
        assert landed.headers["Location"] == "/", landed.headers["Location"]


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def artist_lookups(sandbox: RunningSandbox) -> list[str]:
    """The artist ids Spotify (the sandbox) answered lookups for since its stats were reset,
    in order, repeats included (a 429 or 5xx is not an answer)."""
    ids = []
    for entry in sandbox.requests(limit=2000):
        # 404: Spotify does not know the id, an answer too.
        if entry["group"] == "artists" and entry["status"] in (200, 404):
            ids += _artist_ids(entry["path"])
    return ids


def _artist_ids(path: str) -> list[str]:
    parts = urlsplit(path)
    if parts.path.startswith("/v1/artists/"):
        return [parts.path.rsplit("/", 1)[1]]
    query = dict(parse_qsl(parts.query))
    return [i for i in query.get("ids", "").split(",") if i]
