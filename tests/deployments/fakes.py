"""Fake slots, proxies and probes for the deployments unit tests (the real ones are driven by
the blue-green and high-availability integration tests)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployments.adapters import CommandResult, ProbeResult, SlotInfo
from deployments.models import Environment, HostRef, ProxyRef
from deployments.proxy import ProxyError, ServerState
from deployments.services import environment_configure


class FakeProxyError(Exception):
    pass


@dataclass
class FakeProxy:
    routed: str | None = None
    running: bool = True
    fail_switch: bool = False
    switches: list[str] = field(default_factory=list)
    # What ``servers()`` answers (the multi-host comparison reads addresses and ports).
    servers_state: dict[str, ServerState] = field(default_factory=dict)
    # The backend's counters as ``show stat`` reports them (the analysis reads them).
    backend: str = "app"
    responses_2xx: int = 0
    responses_5xx: int = 0
    response_ms: int = 0

    def servers(self) -> dict[str, ServerState]:
        return self.servers_state

    def serve(self, *, ok: int = 0, errors: int = 0, response_ms: int | None = None) -> None:
        """Counts responses as if clients had been answered through this proxy."""
        self.responses_2xx += ok
        self.responses_5xx += errors
        if response_ms is not None:
            self.response_ms = response_ms

    def command(self, line: str) -> str:
        if not self.running:
            raise ProxyError("admin socket refused the connection")
        assert line == "show stat", line
        header = "# pxname,svname,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,rtime,\n"
        row = f"{self.backend},BACKEND,0,{self.responses_2xx},0,0,{self.responses_5xx},"
        return f"{header}{row}{self.response_ms},\n"

    def routed_slot(self) -> str | None:
        if not self.running:
            raise FakeProxyError("admin socket refused the connection")
        return self.routed

    def server_states(self) -> dict[str, str]:
        if self.servers_state:
            return {name: server.admin for name, server in self.servers_state.items()}
        return {s: ("ready" if s == self.routed else "drain") for s in ("blue", "green")}

    def switch_to(self, slot: str) -> float:
        if self.fail_switch or not self.running:
            raise FakeProxyError(f"cannot switch to {slot}")
        self.switches.append(slot)
        self.routed = slot
        return 0.002

    def is_running(self) -> bool:
        return self.running


def _key(environment: str, slot: str, host: HostRef | None) -> tuple[str, ...]:
    """Slots of the loopback host keep the single-host key; other hosts' carry the address."""
    if host is None or host.local:
        return (environment, slot)
    return (environment, slot, host.address)


@dataclass
class FakeInfrastructure:
    # The environment's first proxy (the single-host one), and further ones by environment.
    proxies: dict[str, FakeProxy] = field(default_factory=dict)
    more_proxies: dict[str, list[FakeProxy]] = field(default_factory=dict)
    slots: dict[tuple[str, ...], SlotInfo] = field(default_factory=dict)
    # Host addresses whose slots answer 503 "down" whatever they run.
    unhealthy_hosts: set[str] = field(default_factory=set)
    # Host addresses whose slot starts fail (an agent that cannot start the release).
    failing_start_hosts: set[str] = field(default_factory=set)
    # Versions whose slots answer 503 "down" to every probe.
    unhealthy_versions: set[str] = field(default_factory=set)
    failing_commands: set[str] = field(default_factory=set)
    fail_stop: bool = False
    commands: list[str] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    starts: list[tuple[str, str, str]] = field(default_factory=list)
    stops: list[tuple[str, str]] = field(default_factory=list)
    probes: list[str] = field(default_factory=list)
    proxy_starts: list[tuple[str, str]] = field(default_factory=list)
    proxy_stops: list[str] = field(default_factory=list)
    # Called with every sleep's seconds: what happens meanwhile (traffic, an operator).
    on_sleep: list[Any] = field(default_factory=list)

    def proxy(self, environment: Any) -> FakeProxy | None:
        return self.proxies.get(environment.name)

    def environment_proxies(self, environment: Any) -> list[tuple[ProxyRef, FakeProxy]]:
        first = self.proxies.get(environment.name)
        found = [first] if first is not None else []
        found += self.more_proxies.get(environment.name, [])
        if len(found) == 1:  # the single-host default: no row behind it
            return [(ProxyRef(environment.name, "127.0.0.1", 1, "fake", None), found[0])]
        # The environment's proxy rows, when it has as many, in id order: their real ids (on
        # PostgreSQL ids do not restart at 1 for each test).
        rows = sorted((r for r in environment.proxy_refs() if r.pk is not None), key=lambda r: r.pk)
        if len(rows) == len(found):
            return list(zip(rows, found, strict=True))
        return [
            (ProxyRef(f"{environment.name}-{i}", "127.0.0.1", 1, f"fake-{i}", i), proxy)
            for i, proxy in enumerate(found, start=1)
        ]

    def proxy_start(
        self, environment: Any, *, live_slot: str, ref: ProxyRef | None = None
    ) -> FakeProxy:
        proxies = dict(self.environment_proxies(environment))
        proxy = proxies[ref] if ref is not None else self.proxies[environment.name]
        proxy.running, proxy.routed = True, live_slot
        self.proxy_starts.append((environment.name, live_slot))
        return proxy

    def proxy_stop(self, environment: Any, *, ref: ProxyRef) -> None:
        proxy = dict(self.environment_proxies(environment))[ref]
        proxy.running = False
        self.proxy_stops.append(ref.name)

    def haproxy_missing(self) -> str:
        return ""

    def gate_python(self, *, source_dir: Path) -> str:
        return sys.executable

    def release_source(self, *, git_sha: str) -> Path:
        return Path("/nonexistent/releases") / git_sha

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
        key = _key(environment, slot, host)
        assert key not in self.slots, "started over a running slot"
        if host is not None and host.address in self.failing_start_hosts:
            raise RuntimeError(f"host {host.address}: the release did not start")
        self.starts.append((*key[:2], version, *key[2:]))
        info = SlotInfo(port=port, version=version, pid=1000 + len(self.starts))
        self.slots[key] = info
        return info

    def slot_stop(
        self,
        *,
        environment: str,
        slot: str,
        drain_seconds: float = 0.0,
        host: HostRef | None = None,
    ) -> None:
        if self.fail_stop:
            raise RuntimeError(f"{environment}/{slot} would not stop")
        key = _key(environment, slot, host)
        self.stops.append(key)
        self.slots.pop(key, None)

    def slot_status(
        self, *, environment: str, slot: str, host: HostRef | None = None
    ) -> SlotInfo | None:
        return self.slots.get(_key(environment, slot, host))

    def slot_url(self, *, port: int, host: HostRef | None = None) -> str:
        return f"http://{host.address if host is not None else '127.0.0.1'}:{port}"

    def probe(self, url: str, *, timeout: float = 3.0) -> ProbeResult:
        self.probes.append(url)
        address, port = url.split("/")[2].split(":")
        running = [
            info
            for key, info in self.slots.items()
            if info.port == int(port) and (key[2] if len(key) > 2 else "127.0.0.1") == address
        ]
        if not running:
            return ProbeResult(url, None, {}, 1.0, error="Connection refused")
        version = running[0].version
        if version in self.unhealthy_versions or address in self.unhealthy_hosts:
            body = {"status": "down", "version": version, "components": {}}
            return ProbeResult(url, 503, body, 2.0)
        body = {
            "status": "ok",
            "version": version,
            "components": {"database": {"status": "ok", "latency_ms": 1.0}},
        }
        return ProbeResult(url, 200, body, 3.0)

    def run_command(self, command: str, *, cwd: Path, timeout: float) -> CommandResult:
        self.commands.append(command)
        if any(bad in command for bad in self.failing_commands):
            return CommandResult(1, f"{command}: 1 problem found")
        return CommandResult(0, f"{command}: fine")

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        for hook in self.on_sleep:
            hook(seconds)


FAST_PIPELINE = {
    "quality": {"params": {"commands": ["lint-check", "unit-tests", "migrations-check"]}},
    "security": {"params": {"commands": ["dependency-audit"]}},
    "staging_health": {"delay_seconds": 0.01},
    "production_health": {"delay_seconds": 0.01},
    # One look at the counters right after the cutover (the analysis tests open a window).
    "analysis": {"params": {"window_seconds": 0}},
    "cleanup": {"params": {"drain_seconds": 0, "rollback_window_seconds": 0}},
}


def make_environments(infrastructure: FakeInfrastructure) -> tuple[Environment, Environment]:
    staging = environment_configure(
        name="staging", blue_port=18001, green_port=18002, listen_port=18000, admin_socket="s"
    )
    production = environment_configure(
        name="production", blue_port=19001, green_port=19002, listen_port=19000, admin_socket="p"
    )
    infrastructure.proxies["staging"] = FakeProxy()
    infrastructure.proxies["production"] = FakeProxy()
    return staging, production
