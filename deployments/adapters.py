"""The outside world as the pipeline and rollbacks see it, behind one small object.

``Infrastructure`` gathers the slot adapters (``deployments.slots`` on this machine,
``deployments.agent`` for every other host), the proxy adapter (``deployments.proxy``), the
HTTP probe of a slot, command execution and sleeping, so unit tests swap the whole thing for
a fake with ``use_infrastructure`` and the real blue-green tests run the real one.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import requests

from deployments.models import LOCAL_ADDRESS, HostRef, ProxyRef

# A slot that needs longer than this to answer its detailed health is not healthy.
SLOT_PROBE_TIMEOUT_SECONDS = 3.0


@dataclass
class ProbeResult:
    url: str
    http_status: int | None
    body: dict[str, Any]
    latency_ms: float
    error: str = ""


@dataclass
class CommandResult:
    returncode: int
    output: str


@dataclass
class SlotInfo:
    """What is running in a slot (mirrors ``deployments.slots.SlotProcess``)."""

    port: int
    version: str
    pid: int | None = None


class ProxyLike(Protocol):
    def routed_slot(self) -> str | None: ...
    def server_states(self) -> dict[str, str]: ...
    def switch_to(self, slot: str) -> float: ...
    def is_running(self) -> bool: ...


@dataclass
class Infrastructure:
    """The real thing: the slot adapter (this machine's slots, or a host's deploy agent), the
    HAProxy adapter, HTTP probes, subprocesses."""

    # Extra environment for the slots' processes (e.g. SECRET_KEY), on top of this one's.
    slot_env: dict[str, str] | None = None

    def proxy(self, environment: Any) -> ProxyLike | None:
        """The (first) proxy in front of ``environment``, or None when it has none."""
        proxies = self.environment_proxies(environment)
        return proxies[0][1] if proxies else None

    def environment_proxies(self, environment: Any) -> list[tuple[ProxyRef, ProxyLike]]:
        """Every enabled proxy in front of ``environment`` with its runtime-API handle."""
        from deployments.proxy import Proxy

        return [
            (ref, Proxy(admin_socket=Path(ref.admin_socket))) for ref in environment.proxy_refs()
        ]

    def proxy_start(
        self, environment: Any, *, live_slot: str, ref: ProxyRef | None = None
    ) -> ProxyLike:
        """Starts one of the environment's HAProxies (the first without ``ref``) routing to
        ``live_slot``; a running one with the same servers is returned as it is. A proxy of
        the single-host default keeps the single-host configuration; a listed proxy gets
        every enabled host's blue and green server with health checks and retries."""
        from deployments.proxy import proxy_start

        ref = ref or environment.proxy_refs()[0]
        if ref.pk is None:
            return proxy_start(
                environment=environment.name,
                listen_port=environment.listen_port,
                blue_port=environment.blue_port,
                green_port=environment.green_port,
                live_slot=live_slot,
            )
        return proxy_start(
            environment=ref.name,
            listen_port=ref.listen_port,
            listen_address=ref.address,
            servers=[(h.address, h.blue_port, h.green_port) for h in environment.app_hosts()],
            live_slot=live_slot,
        )

    def proxy_stop(self, environment: Any, *, ref: ProxyRef) -> None:
        """Stops one of the environment's HAProxies on this machine (a soft stop: open
        requests finish); one not running is left as it is."""
        from deployments.proxy import proxy_stop

        proxy_stop(environment=ref.name if ref.pk is not None else environment.name)

    def haproxy_missing(self) -> str:
        """Why a proxy cannot be started on this machine ("" when it can)."""
        from deployments.proxy import HAPROXY_BIN, INSTALL_HINT, haproxy_installed

        return "" if haproxy_installed() else f"{INSTALL_HINT} (looked for {HAPROXY_BIN})"

    def release_source(self, *, git_sha: str) -> Path:
        from deployments.slots import release_source

        return release_source(git_sha=git_sha)

    # --- Slots, per host -------------------------------------------------------------------
    # ``host`` None (or the loopback host with no agent) runs the slot functions of
    # deployments.slots on this machine; any other host is asked through its deploy agent.

    def remote_host(self, host: HostRef) -> Any:
        """The control side's handle on ``host``'s deploy agent (deployments.agent)."""
        from deployments.agent import RemoteHost

        return RemoteHost(host.address)

    def slot_start(
        self,
        *,
        environment: str,
        slot: str,
        port: int,
        version: str,
        source_dir: Path | None = None,
        git_sha: str = "",
        host: HostRef | None = None,
    ) -> SlotInfo:
        if host is not None and not host.local:
            answer = self.remote_host(host).slot_start(
                environment=environment,
                slot=slot,
                port=port,
                version=version,
                git_sha=git_sha,
                env=self.slot_env,
            )
            return SlotInfo(port=int(answer["port"]), version=answer["version"], pid=None)
        from deployments.slots import slot_start

        if source_dir is None:
            source_dir = self.release_source(git_sha=git_sha)
        process = slot_start(
            environment=environment,
            slot=slot,
            port=port,
            version=version,
            source_dir=source_dir,
            env=self.slot_env,
        )
        return SlotInfo(port=process.port, version=process.version, pid=process.pid)

    def slot_stop(
        self,
        *,
        environment: str,
        slot: str,
        drain_seconds: float = 0.0,
        host: HostRef | None = None,
    ) -> None:
        if host is not None and not host.local:
            self.remote_host(host).slot_stop(
                environment=environment, slot=slot, drain_seconds=drain_seconds
            )
            return
        from deployments.slots import slot_stop

        slot_stop(environment=environment, slot=slot, drain_seconds=drain_seconds)

    def slot_status(
        self, *, environment: str, slot: str, host: HostRef | None = None
    ) -> SlotInfo | None:
        if host is not None and not host.local:
            answer = self.remote_host(host).slot_status(environment=environment, slot=slot)
            if not answer.get("running"):
                return None
            return SlotInfo(port=int(answer["port"]), version=str(answer["version"]))
        from deployments.slots import slot_status

        process = slot_status(environment=environment, slot=slot)
        if process is None:
            return None
        return SlotInfo(port=process.port, version=process.version, pid=process.pid)

    def slot_url(self, *, port: int, host: HostRef | None = None) -> str:
        return f"http://{host.address if host is not None else LOCAL_ADDRESS}:{port}"

    def probe(self, url: str, *, timeout: float = SLOT_PROBE_TIMEOUT_SECONDS) -> ProbeResult:
        started = time.perf_counter()
        try:
            response = requests.get(url, timeout=timeout)
        except requests.RequestException as error:
            latency = (time.perf_counter() - started) * 1000
            return ProbeResult(url, None, {}, latency, error=_first_line(error))
        latency = (time.perf_counter() - started) * 1000
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        return ProbeResult(url, response.status_code, body, latency)

    def gate_python(self, *, source_dir: Path) -> str:
        """The interpreter gate commands run ``source_dir`` with: this one when the release
        pins the same requirements as this checkout, else a virtualenv built from its
        ``requirements-dev.txt`` (kept per requirements: the next release with the same pins
        installs nothing)."""
        from deployments.gate import gate_requirements_differ

        if not gate_requirements_differ(source_dir=source_dir):
            return sys.executable
        from deployments.agent import venv_ensure, venv_python

        venv, _ = venv_ensure(source_dir=source_dir, requirements="requirements-dev.txt")
        return str(venv_python(venv))

    def run_command(self, command: str, *, cwd: Path, timeout: float) -> CommandResult:
        """Runs a gate command (lint, the release's tests, an audit) in ``gate_environment``:
        nothing it does can reach this process's database, Redis, broker or Spotify."""
        with tempfile.TemporaryDirectory(prefix="swedify-gate-") as data_dir:
            try:
                completed = subprocess.run(  # noqa: S602 - commands are operator-configured data
                    command,
                    shell=True,
                    cwd=cwd,
                    env=gate_environment(data_dir=Path(data_dir)),
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                )
            except subprocess.TimeoutExpired as error:
                output = (error.stdout or "") if isinstance(error.stdout, str) else ""
                return CommandResult(124, f"{output}\ntimed out after {timeout:g} s")
        return CommandResult(completed.returncode, completed.stdout + completed.stderr)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


# The only variables a gate command inherits. Everything else (DATABASE_URL, REDIS_URL,
# CELERY_BROKER_URL, SECRET_KEY, SWEDIFY_TOKEN_KEYS, SPOTIFY_*) is production's: a release's
# test suite run with them once flushed the production Redis (cache, queued tasks, other
# deployments' keys).
GATE_INHERITED_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")


def gate_environment(*, data_dir: Path) -> dict[str, str]:
    """A scrubbed environment for gate commands: the embedded defaults (SQLite, local-memory
    cache, filesystem broker) in ``data_dir``, the bundled Spotify sandbox, no secret."""
    env = {name: os.environ[name] for name in GATE_INHERITED_VARIABLES if name in os.environ}
    env["SWEDIFY_DATA_DIR"] = str(data_dir)
    env["TMPDIR"] = str(data_dir)
    env["SWEDIFY_SANDBOX"] = "true"
    return env


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


_override: Infrastructure | Any | None = None


def get_infrastructure() -> Infrastructure:
    return _override if _override is not None else Infrastructure()


@contextlib.contextmanager
def use_infrastructure(infrastructure: Any) -> Iterator[Any]:
    """Run the block against ``infrastructure`` (a fake in unit tests)."""
    global _override
    previous, _override = _override, infrastructure
    try:
        yield infrastructure
    finally:
        _override = previous
