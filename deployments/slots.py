"""App slots: one gunicorn serving one release on a port, and release sources.

A release is a ``git archive`` export of one commit of this repository under
``SWEDIFY_DATA_DIR/releases/<sha>/``. On a single host, slots run that code with the
interpreter of the running process, i.e. the project's ``.venv``: a release is assumed to need
the same pinned requirements as the code that deploys it (``release_requirements_match`` tells
whether that holds). A deploy agent on an app host (``deployments.agent``) instead passes the
interpreter of a virtualenv built for the release's requirements, and the address of its host
to bind to (``bind``, loopback by default).

Gunicorn runs in a session of its own so a slot outlives the process that started it (a
management command, a Celery task). Its pid file and logs live in ``SWEDIFY_DATA_DIR/slots/``;
a pid file is trusted only when that pid is a live, non-zombie gunicorn, so pid files left by
a crash read as "not running".
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from deployments.git import GitError, git

logger = logging.getLogger(__name__)

SLOT_NAMES = ("blue", "green")
# How long a slot may take to answer /health after it was started (gunicorn boot + Django).
START_TIMEOUT = 30.0
# Gunicorn lets in-flight requests finish this long after SIGTERM; slot_stop waits a little
# longer before it sends SIGKILL.
GRACEFUL_TIMEOUT = 10
STOP_KILL_MARGIN = 3.0
POLL_INTERVAL = 0.05
# How long slot_start waits for a port a just-stopped process held to be released.
PORT_FREE_TIMEOUT = 2.0
HEALTH_TIMEOUT = 1.0
# Where a slot listens unless told otherwise: one machine, behind a proxy on the same machine.
LOCAL_ADDRESS = "127.0.0.1"
GUNICORN_WORKERS = 2
GUNICORN_THREADS = 4
# Longer than HAProxy keeps an idle server connection in its pool, so the proxy (not the app)
# closes idle keep-alive connections and never reuses one the app is closing.
GUNICORN_KEEP_ALIVE = 15
LOG_TAIL_LINES = 30
RELEASE_MARKER = ".swedify-release"

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}$")
_SHA_RE = re.compile(r"^[0-9a-fA-F]{4,40}$")
_FULL_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


class SlotError(Exception):
    """A slot could not be started, stopped or described; the message says why."""


@dataclass
class SlotProcess:
    environment: str
    slot: str
    port: int
    pid: int | None
    version: str
    bind: str = LOCAL_ADDRESS
    source_dir: str = ""


def _data_dir() -> Path:
    return Path(settings.DATA_DIR)


def _repo_dir() -> Path:
    return Path(settings.BASE_DIR)


def _check_names(environment: str, slot: str) -> None:
    if not _NAME_RE.match(environment):
        raise SlotError(f"environment name {environment!r} is not a short lowercase name")
    if slot not in SLOT_NAMES:
        raise SlotError(f"slot must be one of {', '.join(SLOT_NAMES)}, not {slot!r}")


def slots_dir() -> Path:
    folder = _data_dir() / "slots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def slot_pid_file(*, environment: str, slot: str) -> Path:
    return slots_dir() / f"{environment}-{slot}.pid"


def slot_log_file(*, environment: str, slot: str) -> Path:
    return slots_dir() / f"{environment}-{slot}.log"


def _meta_file(environment: str, slot: str) -> Path:
    return slots_dir() / f"{environment}-{slot}.json"


def _meta(environment: str, slot: str) -> dict:
    try:
        meta = json.loads(_meta_file(environment, slot).read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def slot_url(*, port: int, host: str = LOCAL_ADDRESS) -> str:
    return f"http://{host}:{port}"


# --- Processes --------------------------------------------------------------------------------


def process_alive(pid: int) -> bool:
    """True for a running process; a zombie (dead, not yet reaped) counts as gone."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: trust kill(0)
    # The state letter follows the parenthesised command name, which may contain spaces.
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in {"Z", "X"}


def _is_gunicorn(pid: int) -> bool:
    """Guards against a recycled pid: a stale pid file may name an unrelated process."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no procfs to ask: trust the pid file
    return b"gunicorn" in cmdline


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        content = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(content[-lines:]) or "(log is empty)"


def port_in_use(port: int, host: str = LOCAL_ADDRESS) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((host, port)) == 0


def health_version(
    *, port: int, host: str = LOCAL_ADDRESS, timeout: float = HEALTH_TIMEOUT
) -> str | None:
    """The version a slot's /health reports, or None if it does not answer 200 with JSON."""
    url = f"{slot_url(port=port, host=host)}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            if response.status != 200:
                return None
            body = json.loads(response.read().decode())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    version = body.get("version") if isinstance(body, dict) else None
    return str(version) if version is not None else None


# --- Slots ------------------------------------------------------------------------------------


def slot_status(*, environment: str, slot: str) -> SlotProcess | None:
    """The running slot, or None (no pid file, or a stale one left by a crash: removed)."""
    _check_names(environment, slot)
    pid_file = slot_pid_file(environment=environment, slot=slot)
    pid = _read_pid(pid_file)
    if pid is None or not process_alive(pid) or not _is_gunicorn(pid):
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
        return None
    meta = _meta(environment, slot)
    return SlotProcess(
        environment=environment,
        slot=slot,
        port=int(meta.get("port", 0)),
        pid=pid,
        version=str(meta.get("version", "")),
        bind=str(meta.get("bind", LOCAL_ADDRESS)),
        source_dir=str(meta.get("source_dir", "")),
    )


def slot_start(
    *,
    environment: str,
    slot: str,
    port: int,
    version: str,
    source_dir: Path,
    env: dict[str, str] | None = None,
    bind: str = LOCAL_ADDRESS,
    python: str | Path | None = None,
) -> SlotProcess:
    """Start gunicorn for ``source_dir`` on ``bind``:``port``; return once /health answers.

    The child inherits this process's environment (DATABASE_URL, REDIS_URL, SECRET_KEY, ...)
    with ``env`` on top and SWEDIFY_VERSION set to ``version``; it runs with ``python`` (a
    release's virtualenv) or else this process's interpreter. Idempotent for a slot already
    running that version of that source on that address and port; refuses a slot running
    something else (stop it first) and a port another process holds. Raises SlotError with
    the log tail if it does not answer /health with ``version`` within START_TIMEOUT.
    """
    _check_names(environment, slot)
    source_dir = Path(source_dir).resolve()
    if not (source_dir / "swedify" / "wsgi.py").is_file():
        raise SlotError(f"{source_dir} is not a Swedify release (no swedify/wsgi.py)")
    running = slot_status(environment=environment, slot=slot)
    if running is not None:
        same = (running.port, running.version, running.bind) == (port, version, bind)
        same_source = running.source_dir in ("", str(source_dir))
        if same and same_source and health_version(port=port, host=bind) == version:
            return running
        raise SlotError(
            f"slot {environment}/{slot} already runs {running.version or '?'} on "
            f"{running.bind}:{running.port} (pid {running.pid}); stop it first"
        )
    # Workers a crashed master left behind still hold the port (and serve the old release);
    # the kernel may take a moment to close the listening socket of a killed process.
    _kill_leftovers(_meta(environment, slot).get("pid"))
    if not _wait_port_free(port, PORT_FREE_TIMEOUT, host=bind):
        raise SlotError(f"port {port} on {bind} is already in use by another process")
    if python is None and not release_requirements_match(source_dir=source_dir):
        logger.warning(
            "release %s pins other requirements than the running venv; it runs with the "
            "venv's packages",
            source_dir.name,
        )

    pid_file = slot_pid_file(environment=environment, slot=slot)
    log_file = slot_log_file(environment=environment, slot=slot)
    with contextlib.suppress(FileNotFoundError):
        pid_file.unlink()
    child_env = {**os.environ, **(env or {}), "SWEDIFY_VERSION": version}
    child_env.pop("PYTHONPATH", None)  # the release's own code must win over this checkout
    command = [
        str(python or sys.executable),
        "-m",
        "gunicorn",
        "swedify.wsgi",
        "--chdir",
        str(source_dir),
        "--bind",
        f"{bind}:{port}",
        "--workers",
        str(GUNICORN_WORKERS),
        "--worker-class",
        "gthread",
        "--threads",
        str(GUNICORN_THREADS),
        "--keep-alive",
        str(GUNICORN_KEEP_ALIVE),
        "--graceful-timeout",
        str(GRACEFUL_TIMEOUT),
        "--pid",
        str(pid_file),
        # Load the app in the master: a release that cannot boot (bad configuration, an import
        # error) exits at once with its message instead of respawning workers forever.
        "--preload",
        # Gunicorn's control socket defaults to one path per user: two slots would fight.
        "--no-control-socket",
        "--capture-output",
        "--error-logfile",
        str(log_file),
        "--name",
        f"swedify-{environment}-{slot}",
    ]
    started = time.monotonic()
    with log_file.open("ab") as log:
        log.write(f"--- slot_start {version} on {bind}:{port}\n".encode())
        log.flush()
        # A session of its own: the slot outlives the process that started it (a management
        # command, a Celery task) and no terminal or process-group signal reaches it.
        child = subprocess.Popen(
            command,
            cwd=source_dir,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    # Written before gunicorn writes the same pid, so a slot that dies while booting is known.
    pid_file.write_text(f"{child.pid}\n")
    _meta_file(environment, slot).write_text(
        json.dumps(
            {
                "port": port,
                "version": version,
                "source_dir": str(source_dir),
                "pid": child.pid,
                "bind": bind,
                "python": str(python or sys.executable),
            }
        )
    )
    deadline = started + START_TIMEOUT
    while time.monotonic() < deadline:
        if child.poll() is not None:
            with contextlib.suppress(FileNotFoundError):
                pid_file.unlink()
            raise SlotError(
                f"gunicorn for {environment}/{slot} exited with {child.returncode} while "
                f"starting:\n{_log_tail(log_file)}"
            )
        answered = health_version(port=port, host=bind, timeout=0.5)
        if answered == version:
            return SlotProcess(
                environment=environment,
                slot=slot,
                port=port,
                pid=child.pid,
                version=version,
                bind=bind,
                source_dir=str(source_dir),
            )
        if answered is not None:
            # Another server answers on this port: never report it as our slot.
            _stop_pid(child.pid, grace=STOP_KILL_MARGIN)
            raise SlotError(f"port {port} answers version {answered!r}, not {version!r}")
        time.sleep(POLL_INTERVAL)
    _stop_pid(child.pid, grace=STOP_KILL_MARGIN)
    raise SlotError(
        f"slot {environment}/{slot} did not answer /health with {version} within "
        f"{START_TIMEOUT:.0f} s:\n{_log_tail(log_file)}"
    )


def _wait_port_free(port: int, timeout: float, *, host: str = LOCAL_ADDRESS) -> bool:
    deadline = time.monotonic() + timeout
    while port_in_use(port, host):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(POLL_INTERVAL)
    return not process_alive(pid)


def _leftovers(group: int) -> list[int]:
    """Live gunicorn processes of a slot's process group (its master's pid: each slot runs in
    a session of its own). After the master crashed, its workers live on until they notice,
    holding the port and serving the old code meanwhile."""
    if group <= 0 or group == os.getpgrp():
        return []
    members = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and fields[2] == str(group) and fields[0] not in {"Z", "X"}:
            pid = int(entry.name)
            if _is_gunicorn(pid):
                members.append(pid)
    return members


def _kill_leftovers(group: int | None) -> None:
    if not group:
        return
    members = _leftovers(group)
    for member in members:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)
    for member in members:
        _wait_gone(member, STOP_KILL_MARGIN)


def _stop_pid(pid: int | None, *, grace: float) -> None:
    """SIGTERM (gunicorn: graceful), then SIGKILL for the master and what is left of its
    group."""
    if pid is None:
        return
    if process_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, grace):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, STOP_KILL_MARGIN)
    _kill_leftovers(pid)


def slot_stop(*, environment: str, slot: str, drain_seconds: float = 0.0) -> None:
    """Stop a slot gracefully: wait ``drain_seconds`` (the proxy drains it meanwhile), then
    SIGTERM so gunicorn finishes in-flight requests, then SIGKILL after a bound. A slot that
    is not running is a no-op."""
    running = slot_status(environment=environment, slot=slot)
    if running is None:
        _kill_leftovers(_meta(environment, slot).get("pid"))
        return
    if drain_seconds > 0:
        time.sleep(drain_seconds)
    _stop_pid(running.pid, grace=GRACEFUL_TIMEOUT + STOP_KILL_MARGIN)
    if running.pid is not None and process_alive(running.pid):
        raise SlotError(f"slot {environment}/{slot} (pid {running.pid}) would not stop")
    with contextlib.suppress(FileNotFoundError):
        slot_pid_file(environment=environment, slot=slot).unlink()


# --- Releases ---------------------------------------------------------------------------------


def _git(*args: str) -> str:
    """This repository's git, failing as a SlotError (the errors callers of this module catch)."""
    try:
        return git(*args)
    except GitError as error:
        raise SlotError(str(error)) from None


def _full_sha(git_sha: str) -> str:
    if not _SHA_RE.match(git_sha):
        raise SlotError(f"{git_sha!r} is not a git commit SHA")
    return _git("rev-parse", "--verify", "--quiet", f"{git_sha}^{{commit}}")


def release_source(*, git_sha: str) -> Path:
    """Export commit ``git_sha`` of this repository into ``SWEDIFY_DATA_DIR/releases/<sha>/``
    (the full SHA). Idempotent; concurrent callers end with one complete directory."""
    full_sha = _full_sha(git_sha)
    target = _data_dir() / "releases" / full_sha
    if (target / RELEASE_MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{full_sha[:12]}-", dir=target.parent))
    try:
        archive = staging / "release.tar"
        _git("archive", "--format=tar", f"--output={archive}", full_sha)
        return release_unpack(git_sha=full_sha, archive=archive)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def release_unpack(*, git_sha: str, archive: Path) -> Path:
    """Unpack a release archive (tar, optionally gzipped) of commit ``git_sha`` (the full SHA)
    into ``SWEDIFY_DATA_DIR/releases/<sha>/``; what an app host does with an archive it
    downloaded. Idempotent; concurrent callers end with one complete directory."""
    if not _FULL_SHA_RE.match(git_sha):
        raise SlotError(f"{git_sha!r} is not a full git commit SHA")
    releases = _data_dir() / "releases"
    target = releases / git_sha
    if (target / RELEASE_MARKER).is_file():
        return target
    releases.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{git_sha[:12]}-", dir=releases))
    try:
        tree = staging / "tree"
        try:
            with tarfile.open(archive) as tar:
                # "data": no absolute paths, no links out of the tree, no devices.
                tar.extractall(tree, filter="data")
        except (tarfile.TarError, OSError) as error:
            raise SlotError(f"cannot unpack the release archive of {git_sha}: {error}") from None
        (tree / RELEASE_MARKER).write_text(git_sha + "\n")
        try:
            tree.rename(target)
        except OSError:
            # Another caller finished first (or left a partial copy without the marker).
            if not (target / RELEASE_MARKER).is_file():
                shutil.rmtree(target, ignore_errors=True)
                tree.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def release_archive(*, git_sha: str) -> Path:
    """``git archive`` of commit ``git_sha`` as a gzipped tar in
    ``SWEDIFY_DATA_DIR/release-archives/<sha>.tar.gz``, what the control side serves to app
    hosts. Built once; the file never changes afterwards, so its checksum stays valid."""
    full_sha = _full_sha(git_sha)
    folder = _data_dir() / "release-archives"
    target = folder / f"{full_sha}.tar.gz"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".{full_sha}-{os.getpid()}-{time.monotonic_ns()}.tmp"
    try:
        _git("archive", "--format=tar.gz", f"--output={staging}", full_sha)
        # A concurrent builder's identical file may already be there; either one is whole.
        os.replace(staging, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
    return target


def release_requirements_match(*, source_dir: Path) -> bool:
    """True when the release pins the same requirements as the code running this process."""
    for name in ("requirements.txt",):
        try:
            ours = (_repo_dir() / name).read_text()
            theirs = (Path(source_dir) / name).read_text()
        except OSError:
            return False
        if ours != theirs:
            return False
    return True
