"""The deploy agent on every app host, and the control side's handle on it.

An app host runs a Celery worker of its own that consumes the queue ``deploy.<host>``::

    SWEDIFY_AGENT_HOST=10.0.0.12 celery -A swedify worker -Q deploy.10.0.0.12 --concurrency 1

Its tasks (below) start a release in a slot, stop a slot, and report a slot's status and
health. Starting downloads the release archive from the control side over HTTP (a token: the
HMAC of the commit with SECRET_KEY; the archive's sha256 checked on arrival), unpacks it under
the agent's data folder and builds a virtualenv from the release's ``requirements.txt``, shared
by every release with the same requirements. Every task is idempotent and answers a JSON
object: ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``.

The control side (the pipeline) uses ``RemoteHost(address)`` for one host and ``agents_call``
to send one action to several hosts at once. Every call has a deadline: a host whose agent
does not answer in time is an answer of its own (``answered=False``), never a hang.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import os
import shutil
import site
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests
from celery import shared_task
from celery.backends.filesystem import FilesystemBackend
from celery.exceptions import TimeoutError as CeleryTimeoutError
from django.conf import settings

from deployments import slots
from deployments.slots import SlotError

QUEUE_PREFIX = "deploy."
ACTIONS = ("slot_start", "slot_stop", "slot_status", "slot_health")

# Deadlines of the control side. Starting may build a virtualenv from the package index (a
# minute or more for a release that changes requirements); the others answer in seconds.
START_DEADLINE_SECONDS = 600.0
STATUS_DEADLINE_SECONDS = 15.0
HEALTH_DEADLINE_SECONDS = 15.0
# Stopping waits for the drain and gunicorn's graceful timeout before it answers.
STOP_MARGIN_SECONDS = slots.GRACEFUL_TIMEOUT + slots.STOP_KILL_MARGIN + 15.0
# How often a waiting caller looks for an answer (the file backend is polled).
RESULT_POLL_SECONDS = 0.1

# The agent's own budgets; a start's (download, virtualenv, install, slot boot) fit within
# the control side's START_DEADLINE_SECONDS, so an agent gives up before its caller does.
DOWNLOAD_TIMEOUT_SECONDS = 60.0
DOWNLOAD_CHUNK_BYTES = 1 << 20
MAX_ARCHIVE_BYTES = 512 << 20
VENV_CREATE_TIMEOUT_SECONDS = 60.0
PIP_INSTALL_TIMEOUT_SECONDS = 420.0
# A slot's detailed health answers within a second by contract; more is a failure.
SLOT_PROBE_TIMEOUT_SECONDS = 3.0
OUTPUT_TAIL_CHARS = 2000
VENV_MARKER = ".swedify-venv-ready"
SEED_PTH = "_swedify_seed.pth"


class AgentError(Exception):
    """An agent could not do what it was asked; the message says which host and why."""


class AgentNotAnswering(AgentError):
    """No answer from a host's agent within the deadline (agent down, queue not consumed, or
    the work took longer): nothing is known to have happened there."""


# --- Release archives: the control side's offer ----------------------------------------------


def release_token(*, git_sha: str) -> str:
    """What an agent must present to download the archive of ``git_sha``: the HMAC of the
    commit with SECRET_KEY, so the control side needs no token store and a token opens one
    commit only."""
    message = f"swedify-release-archive:{git_sha}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()


def release_token_valid(*, git_sha: str, token: str) -> bool:
    return hmac.compare_digest(release_token(git_sha=git_sha).encode(), token.encode())


@dataclass(frozen=True)
class ReleaseOffer:
    """Where and how an agent downloads one release, and what its archive must hash to."""

    git_sha: str
    url: str
    token: str
    sha256: str


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as archive:
        for chunk in iter(lambda: archive.read(DOWNLOAD_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def release_offer(*, git_sha: str, control_url: str | None = None) -> ReleaseOffer:
    """Builds (once) the archive of ``git_sha`` that ``/deploy/releases/`` serves, and what an
    agent needs to fetch it. Raises SlotError for what is not a commit of this repository."""
    archive = slots.release_archive(git_sha=git_sha)
    full_sha = archive.name.removesuffix(".tar.gz")
    base = (control_url or settings.SWEDIFY_CONTROL_URL).rstrip("/")
    return ReleaseOffer(
        git_sha=full_sha,
        url=f"{base}/deploy/releases/{full_sha}.tar.gz",
        token=release_token(git_sha=full_sha),
        sha256=file_sha256(archive),
    )


# --- Results of the embedded broker ----------------------------------------------------------


class AtomicFilesystemBackend(FilesystemBackend):
    """Celery's file result backend, writing each result under a temporary name and renaming
    it into place: the caller polls the folder and must never read half a result. Makes
    its folder (private to its owner) on first use, as the filesystem broker does."""

    def __init__(self, url: str | None = None, *args: Any, **kwargs: Any) -> None:
        if url:
            Path(self._find_path(url)).mkdir(mode=0o700, parents=True, exist_ok=True)
        super().__init__(url, *args, **kwargs)

    def set(self, key: bytes, value: Any) -> None:
        final = self._filename(key)
        staging = final + b".tmp-" + uuid.uuid4().hex.encode()
        with self.open(staging, "wb") as outfile:
            outfile.write(value if isinstance(value, bytes) else str(value).encode())
        os.replace(staging, final)


# --- The agent: releases and virtualenvs on this host -----------------------------------------


def _data_dir() -> Path:
    return Path(settings.DATA_DIR)


def release_fetch(*, offer: Mapping[str, str]) -> tuple[Path, bool]:
    """The release directory of ``offer`` on this host, downloading and unpacking it unless
    it is here already. Returns (directory, downloaded). Refuses an archive whose sha256 is
    not the offered one; a refused token is an AgentError naming the HTTP status."""
    git_sha = offer["git_sha"]
    existing = _data_dir() / "releases" / git_sha
    if (existing / slots.RELEASE_MARKER).is_file():
        return existing, False
    downloads = _data_dir() / "release-downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=downloads, suffix=".tar.gz") as archive:
        digest, size = hashlib.sha256(), 0
        try:
            with requests.get(
                offer["url"],
                headers={"Authorization": f"Bearer {offer['token']}"},
                stream=True,
                timeout=DOWNLOAD_TIMEOUT_SECONDS,
            ) as response:
                if response.status_code != 200:
                    raise AgentError(
                        f"the control side answered {response.status_code} for the release "
                        f"archive of {git_sha} at {offer['url']}"
                    )
                for chunk in response.iter_content(DOWNLOAD_CHUNK_BYTES):
                    size += len(chunk)
                    if size > MAX_ARCHIVE_BYTES:
                        raise AgentError(f"the release archive of {git_sha} is too large")
                    digest.update(chunk)
                    archive.write(chunk)
        except requests.RequestException as error:
            raise AgentError(
                f"cannot download the release archive of {git_sha} from {offer['url']}: "
                f"{_first_line(error)}"
            ) from None
        archive.flush()
        if not hmac.compare_digest(digest.hexdigest(), offer["sha256"]):
            raise AgentError(
                f"the release archive of {git_sha} has sha256 {digest.hexdigest()}, not the "
                f"offered {offer['sha256']}; refused"
            )
        return slots.release_unpack(git_sha=git_sha, archive=Path(archive.name)), True


def _seed_paths() -> list[str]:
    """The agent's own site-packages: what a seeded virtualenv reuses."""
    return [path for path in site.getsitepackages() if Path(path).is_dir()]


def venv_key(*, source_dir: Path, seed: bool, requirements: str = "requirements.txt") -> str:
    """Releases whose requirements (and interpreter, and seeding) are the same share one
    virtualenv, so a release that changes only code costs no install. Another requirements
    file (the quality gate's ``requirements-dev.txt``, which includes ``requirements.txt``)
    is a virtualenv of its own."""
    digest = hashlib.sha256()
    digest.update(f"{sys.version}\n{sys.platform}\n".encode())
    digest.update(f"seed={_seed_paths() if seed else []}\n".encode())
    for name in dict.fromkeys(["requirements.txt", requirements]):
        path = Path(source_dir) / name
        if name != "requirements.txt":
            digest.update(f"\nfile {name}\n".encode())
        digest.update(path.read_bytes() if path.is_file() else b"")
    return digest.hexdigest()[:24]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(command: list[str], *, timeout: float, what: str) -> None:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    env.pop("PYTHONPATH", None)
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        raise AgentError(f"{what} took longer than {timeout:g} s") from None
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr).strip()[-OUTPUT_TAIL_CHARS:]
        raise AgentError(f"{what} failed with exit status {completed.returncode}:\n{output}")


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def venv_ensure(
    *, source_dir: Path, seed: bool | None = None, requirements: str = "requirements.txt"
) -> tuple[Path, bool]:
    """The virtualenv that runs ``source_dir``, built under ``SWEDIFY_DATA_DIR/venvs/`` with
    ``pip install -r requirements.txt`` unless one for the same requirements is ready.
    Returns (virtualenv, reused). Seeded (``SWEDIFY_AGENT_VENV_SEED``), it sees the agent's
    own packages behind its own, so pip installs only what those lack or pin differently. A
    build that failed or was interrupted leaves no ready virtualenv behind."""
    seed = settings.SWEDIFY_AGENT_VENV_SEED if seed is None else seed
    key = venv_key(source_dir=source_dir, seed=seed, requirements=requirements)
    venv = _data_dir() / "venvs" / key
    ready = venv / VENV_MARKER
    if ready.is_file():
        return venv, True
    # One build per key, also when two agents share a data folder by mistake.
    with _locked(venv.with_name(f"{key}.lock")):
        if ready.is_file():
            return venv, True
        shutil.rmtree(venv, ignore_errors=True)
        try:
            _venv_build(
                venv=venv, source_dir=Path(source_dir), seed=seed, requirements=requirements
            )
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        ready.write_text(f"{Path(source_dir).name}\n")
    return venv, False


def _venv_build(
    *, venv: Path, source_dir: Path, seed: bool, requirements: str = "requirements.txt"
) -> None:
    # Built where it will be used: a virtualenv cannot be moved (its scripts name its path).
    create = [sys.executable, "-m", "venv"]
    create += ["--without-pip", str(venv)] if seed else [str(venv)]
    _run(create, timeout=VENV_CREATE_TIMEOUT_SECONDS, what="creating the virtualenv")
    python = venv_python(venv)
    if seed:
        purelib = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            timeout=VENV_CREATE_TIMEOUT_SECONDS,
            check=True,
        ).stdout.strip()
        # Appended after the virtualenv's own site-packages: what pip installs there wins.
        (Path(purelib) / SEED_PTH).write_text("\n".join(_seed_paths()) + "\n")
    wanted = source_dir / requirements
    if wanted.is_file():
        _run(
            # pip finds a ``-r requirements.txt`` inside the file beside that file.
            [str(python), "-m", "pip", "install", "--no-input", "-r", str(wanted)],
            timeout=PIP_INSTALL_TIMEOUT_SECONDS,
            what=f"installing the requirements of {source_dir.name}",
        )


# --- The agent: its tasks --------------------------------------------------------------------


def _check_host(host: str) -> None:
    """A task taken from another host's queue (a worker started with the wrong -Q) would
    start slots on the wrong machine: refuse it."""
    mine = settings.SWEDIFY_AGENT_HOST
    if not mine:
        raise AgentError("this worker is not a deploy agent (SWEDIFY_AGENT_HOST is not set)")
    if host != mine:
        raise AgentError(f"this agent is {mine}, not {host}; check the worker's -Q option")


def _slot_dict(process: slots.SlotProcess | None) -> dict[str, Any]:
    if process is None:
        return {"running": False}
    return {
        "running": True,
        "port": process.port,
        "version": process.version,
        "pid": process.pid,
        "bind": process.bind,
        "git_sha": Path(process.source_dir).name if process.source_dir else "",
    }


def _answer(work: Any) -> dict[str, Any]:
    """Expected failures are answers (``ok: false`` with the reason), not task failures."""
    try:
        return {"ok": True, **work()}
    except (AgentError, SlotError) as error:
        return {"ok": False, "error": str(error)}


# Agent tasks keep their results (the caller waits for them) and are acknowledged on receipt:
# a command redelivered after its caller gave up must not run; the caller retries instead.
AGENT_TASK = {"ignore_result": False, "acks_late": False}


@shared_task(name="deployments.agent.slot_start", **AGENT_TASK)
def agent_slot_start(
    *,
    host: str,
    environment: str,
    slot: str,
    port: int,
    version: str,
    offer: dict[str, str],
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Runs release ``offer`` in ``slot`` on this host's address and ``port``; answers once
    the slot's /health reports ``version``. A slot already running that release is left
    alone (``already_running: true``); a slot running another one is refused."""

    def work() -> dict[str, Any]:
        _check_host(host)
        running = slots.slot_status(environment=environment, slot=slot)
        if running is not None and (
            (running.port, running.version, running.bind) == (port, version, host)
            and Path(running.source_dir).name == offer["git_sha"]
            and slots.health_version(port=port, host=host) == version
        ):
            return {**_slot_dict(running), "already_running": True}
        source_dir, downloaded = release_fetch(offer=offer)
        venv, reused = venv_ensure(source_dir=source_dir)
        process = slots.slot_start(
            environment=environment,
            slot=slot,
            port=port,
            version=version,
            source_dir=source_dir,
            env=_slot_env(host=host, env=env),
            bind=host,
            python=venv_python(venv),
        )
        return {
            **_slot_dict(process),
            "already_running": False,
            "downloaded": downloaded,
            "venv": str(venv),
            "venv_reused": reused,
        }

    return _answer(work)


def _slot_env(*, host: str, env: Mapping[str, str] | None) -> dict[str, str]:
    """The slot answers requests addressed to its host (the agent's probes, the proxies'
    health checks), whatever else ALLOWED_HOSTS lists."""
    merged = dict(env or {})
    allowed = [
        name.strip()
        for name in merged.get("ALLOWED_HOSTS", ",".join(settings.ALLOWED_HOSTS)).split(",")
        if name.strip()
    ]
    if host not in allowed:
        allowed.append(host)
    merged["ALLOWED_HOSTS"] = ",".join(allowed)
    return merged


@shared_task(name="deployments.agent.slot_stop", **AGENT_TASK)
def agent_slot_stop(
    *, host: str, environment: str, slot: str, drain_seconds: float = 0.0
) -> dict[str, Any]:
    """Stops ``slot`` after ``drain_seconds`` (gunicorn then finishes in-flight requests); a
    slot that is not running is a no-op (``was_running: false``)."""

    def work() -> dict[str, Any]:
        _check_host(host)
        running = slots.slot_status(environment=environment, slot=slot)
        slots.slot_stop(
            environment=environment,
            slot=slot,
            drain_seconds=drain_seconds if running is not None else 0.0,
        )
        return {"was_running": running is not None, **_slot_dict(None)}

    return _answer(work)


@shared_task(name="deployments.agent.slot_status", **AGENT_TASK)
def agent_slot_status(*, host: str, environment: str, slot: str) -> dict[str, Any]:
    """What runs in ``slot`` (``running: false`` when nothing does)."""

    def work() -> dict[str, Any]:
        _check_host(host)
        return _slot_dict(slots.slot_status(environment=environment, slot=slot))

    return _answer(work)


@shared_task(name="deployments.agent.slot_health", **AGENT_TASK)
def agent_slot_health(
    *, host: str, environment: str, slot: str, port: int | None = None
) -> dict[str, Any]:
    """The slot's ``GET /health?detailed=true`` as seen on this host: ``http_status`` (None
    when it did not answer), ``body``, ``latency_ms``, ``error``, and ``healthy`` (200)."""

    def work() -> dict[str, Any]:
        _check_host(host)
        probe_port = port
        if probe_port is None:
            running = slots.slot_status(environment=environment, slot=slot)
            if running is None:
                return _unhealthy(url="", error=f"slot {environment}/{slot} is not running")
            probe_port = running.port
        return _probe(f"{slots.slot_url(port=probe_port, host=host)}/health?detailed=true")

    return _answer(work)


def _probe(url: str) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        response = requests.get(url, timeout=SLOT_PROBE_TIMEOUT_SECONDS)
    except requests.RequestException as error:
        latency = (time.perf_counter() - started) * 1000
        return _unhealthy(url=url, error=_first_line(error), latency_ms=latency)
    latency = (time.perf_counter() - started) * 1000
    try:
        body = response.json()
    except ValueError:
        body = {}
    return {
        "healthy": response.status_code == 200,
        "http_status": response.status_code,
        "body": body if isinstance(body, dict) else {},
        "latency_ms": latency,
        "url": url,
        "error": "",
    }


def _unhealthy(*, url: str, error: str, latency_ms: float = 0.0) -> dict[str, Any]:
    return {"healthy": False, "http_status": None, "body": {}, "latency_ms": latency_ms,
            "url": url, "error": error}  # fmt: skip


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


TASKS = {
    "slot_start": agent_slot_start,
    "slot_stop": agent_slot_stop,
    "slot_status": agent_slot_status,
    "slot_health": agent_slot_health,
}


# --- The control side ------------------------------------------------------------------------


@dataclass
class AgentAnswer:
    """One host's answer to one action. ``answered`` is False when its agent said nothing
    within the deadline (or the command could not even be sent); ``ok`` is True only when it
    answered and did what was asked, with ``result`` holding its JSON answer."""

    host: str
    action: str
    ok: bool
    answered: bool
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def raise_for_error(self) -> dict[str, Any]:
        """The result, or AgentNotAnswering / AgentError with the reason."""
        if not self.answered:
            raise AgentNotAnswering(self.error)
        if not self.ok:
            raise AgentError(self.error)
        return self.result


@dataclass
class PendingCall:
    """A command sent to a host's agent whose answer is awaited until ``deadline``
    (``time.monotonic()``)."""

    host: str
    action: str
    deadline: float
    timeout: float
    async_result: Any = None
    send_error: str = ""

    def wait(self) -> AgentAnswer:
        if self.async_result is None:
            return self._failed(self.send_error, answered=False)
        remaining = self.deadline - time.monotonic()
        try:
            # Not every backend can tell "ready" without waiting; a tiny timeout still lets
            # an answer that already arrived be read after another host used up the time.
            value = self.async_result.get(
                timeout=max(remaining, RESULT_POLL_SECONDS),
                propagate=False,
                interval=RESULT_POLL_SECONDS,
                # The pipeline runs inside a Celery task; waiting on another worker (never on
                # itself) cannot deadlock.
                disable_sync_subtasks=False,
            )
        except CeleryTimeoutError:
            return self._failed(
                f"host {self.host} did not answer {self.action} within {self.timeout:g} s "
                f"(is its agent running and consuming {QUEUE_PREFIX}{self.host}?)",
                answered=False,
            )
        failed = self.async_result.failed()
        with contextlib.suppress(Exception):
            self.async_result.forget()  # read once; nobody asks again
        if failed:
            return self._failed(f"host {self.host}: {self.action} failed: {value!r}")
        if not isinstance(value, dict):
            return self._failed(f"host {self.host}: unexpected answer {value!r}")
        if not value.get("ok"):
            error = f"host {self.host}: {value.get('error') or 'failed'}"
            return self._failed(error, result=value)
        return AgentAnswer(self.host, self.action, ok=True, answered=True, result=value)

    def _failed(
        self, error: str, *, answered: bool = True, result: dict[str, Any] | None = None
    ) -> AgentAnswer:
        return AgentAnswer(
            self.host, self.action, ok=False, answered=answered, result=result or {}, error=error
        )


class RemoteHost:
    """One app host as the control side sees it: each method sends a command to the host's
    agent (queue ``deploy.<address>``) and waits for its answer until the deadline, returning
    the agent's JSON answer. Raises AgentNotAnswering when nothing came back in time (nothing
    is known to have changed there) and AgentError when the agent answered with a failure."""

    def __init__(self, address: str, *, control_url: str | None = None) -> None:
        if not address or any(character.isspace() for character in address):
            raise AgentError(f"{address!r} is not a host address")
        self.address = address
        self.control_url = control_url

    def __repr__(self) -> str:
        return f"RemoteHost({self.address!r})"

    @property
    def queue(self) -> str:
        return f"{QUEUE_PREFIX}{self.address}"

    def send(self, action: str, *, timeout: float | None = None, **kwargs: Any) -> PendingCall:
        """Sends ``action`` (one of ACTIONS) without waiting; ``PendingCall.wait()`` answers.
        ``slot_start`` takes ``git_sha`` and sends the agent where to download it."""
        if action not in TASKS:
            raise ValueError(f"unknown agent action {action!r}; one of {', '.join(ACTIONS)}")
        timeout = _default_timeout(action, kwargs) if timeout is None else float(timeout)
        pending = PendingCall(self.address, action, time.monotonic() + timeout, timeout)
        try:
            if action == "slot_start":
                offer = release_offer(git_sha=kwargs.pop("git_sha"), control_url=self.control_url)
                kwargs["offer"] = asdict(offer)
            pending.async_result = TASKS[action].apply_async(
                kwargs={"host": self.address, **kwargs},
                queue=self.queue,
                # An agent that comes back after the caller gave up drops the command instead
                # of, say, starting a slot nobody waits for.
                expires=timeout,
            )
        except (SlotError, AgentError) as error:
            pending.send_error = f"host {self.address}: {error}"
        except Exception as error:  # noqa: BLE001 - a broker failure is this host's answer
            pending.send_error = (
                f"host {self.address}: cannot send {action} to {self.queue}: {_first_line(error)}"
            )
        return pending

    def call(self, action: str, *, timeout: float | None = None, **kwargs: Any) -> AgentAnswer:
        return self.send(action, timeout=timeout, **kwargs).wait()

    def slot_start(
        self,
        *,
        environment: str,
        slot: str,
        port: int,
        version: str,
        git_sha: str,
        env: dict[str, str] | None = None,
        timeout: float = START_DEADLINE_SECONDS,
    ) -> dict[str, Any]:
        """Runs commit ``git_sha`` as ``version`` in ``slot`` on this host's ``port``; answers
        ``{"running": true, "port", "version", "pid", "bind", "git_sha", "already_running",
        "downloaded", "venv", "venv_reused"}`` once the slot answers /health. ``env`` goes on
        top of the agent's environment for the slot's process."""
        return self.call(
            "slot_start",
            timeout=timeout,
            environment=environment,
            slot=slot,
            port=port,
            version=version,
            git_sha=git_sha,
            env=env,
        ).raise_for_error()

    def slot_stop(
        self,
        *,
        environment: str,
        slot: str,
        drain_seconds: float = 0.0,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Stops the slot after the drain; answers ``{"was_running": bool}``."""
        return self.call(
            "slot_stop",
            timeout=timeout,
            environment=environment,
            slot=slot,
            drain_seconds=drain_seconds,
        ).raise_for_error()

    def slot_status(
        self, *, environment: str, slot: str, timeout: float = STATUS_DEADLINE_SECONDS
    ) -> dict[str, Any]:
        """``{"running": false}`` or ``{"running": true, "port", "version", "pid", "bind",
        "git_sha"}``."""
        return self.call(
            "slot_status", timeout=timeout, environment=environment, slot=slot
        ).raise_for_error()

    def slot_health(
        self,
        *,
        environment: str,
        slot: str,
        port: int | None = None,
        timeout: float = HEALTH_DEADLINE_SECONDS,
    ) -> dict[str, Any]:
        """The slot's detailed health probed on the host: ``{"healthy", "http_status" (None
        if it did not answer), "body", "latency_ms", "url", "error"}``."""
        return self.call(
            "slot_health", timeout=timeout, environment=environment, slot=slot, port=port
        ).raise_for_error()


def _default_timeout(action: str, kwargs: Mapping[str, Any]) -> float:
    if action == "slot_start":
        return START_DEADLINE_SECONDS
    if action == "slot_stop":
        return float(kwargs.get("drain_seconds") or 0.0) + STOP_MARGIN_SECONDS
    if action == "slot_health":
        return HEALTH_DEADLINE_SECONDS
    return STATUS_DEADLINE_SECONDS


def agents_call(
    *,
    hosts: Sequence[str],
    action: str,
    timeout: float | None = None,
    per_host: Mapping[str, Mapping[str, Any]] | None = None,
    control_url: str | None = None,
    **kwargs: Any,
) -> dict[str, AgentAnswer]:
    """Sends ``action`` to every host's agent at once and waits for all answers within one
    deadline; returns each host's AgentAnswer (in ``hosts``' order). A host that fails or
    does not answer is an answer like any other, never an exception hiding the rest.
    ``per_host[address]`` adds or overrides keyword arguments for one host (e.g. its port)."""
    if len(set(hosts)) != len(hosts):
        raise ValueError(f"a host is listed twice: {list(hosts)}")
    pending = [
        RemoteHost(host, control_url=control_url).send(
            action, timeout=timeout, **{**kwargs, **dict((per_host or {}).get(host, {}))}
        )
        for host in hosts
    ]
    # Every command is on its way before the first wait: the hosts work in parallel and the
    # total wait is the slowest host's, bounded by the one deadline.
    return {call.host: call.wait() for call in pending}
