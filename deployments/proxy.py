"""HAProxy in front of an environment's two app slots; the only code that talks to HAProxy.

One HAProxy per environment listens on 127.0.0.1 and balances the backend ``app`` over the
servers ``blue`` and ``green`` (the two slots' loopback ports). Exactly one of them is
``ready`` (the live slot); the other is ``drain``: health-checked every second but given no
new requests, so a switch is two runtime-API commands over the UNIX admin socket and takes
milliseconds, with no reload and no dropped connection. Both sides keep connections alive
(HAProxy's default keep-alive mode, not ``http-server-close``): every request is balanced on
its own, so a client's open connection follows the switch.

The live slot is persisted twice under ``SWEDIFY_DATA_DIR/proxy/``: in ``<env>.json`` (what
``proxy_start`` comes back to when not told otherwise) and in the rendered ``<env>.cfg``
(the live slot ready, the other in maintenance), so even a bare ``haproxy -f <env>.cfg``
after a crash routes to the slot the last switch chose.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

SLOT_NAMES = ("blue", "green")
HAPROXY_BIN = (
    os.environ.get("SWEDIFY_HAPROXY", "") or shutil.which("haproxy") or "/usr/sbin/haproxy"
)
INSTALL_HINT = "HAProxy is not installed: apt-get install haproxy"
ADMIN_TIMEOUT = 2.0
START_TIMEOUT = 10.0
# How long switch_to waits for HAProxy's own health check to pass on the new slot (one check
# interval plus margin when the slot was in maintenance and has never been checked).
SWITCH_CHECK_TIMEOUT = 5.0
CHECK_INTERVAL_MS = 1000
# A soft stop lets open requests finish; connections still open after this are cut.
HARD_STOP_AFTER_S = 3
POLL_INTERVAL = 0.02
# AF_UNIX paths are limited to 108 bytes on Linux.
MAX_SOCKET_PATH = 100

# srv_admin_state bits from HAProxy's server.h.
_ADMF_MAINT = 0x01 | 0x02 | 0x20  # forced, inherited, resolution maintenance
_ADMF_DRAIN = 0x08 | 0x10  # forced, inherited drain
_OP_RUNNING = 2
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}$")
_CHECK_L7_OK = 15  # srv_check_status HCHK_STATUS_L7OKD: the last finished check passed
_TCP_ADMIN_RE = re.compile(r"^([A-Za-z0-9.-]+):(\d{1,5})$")


class ProxyError(Exception):
    """HAProxy could not be started, reached or switched; the message says why."""


@dataclass(frozen=True)
class ServerState:
    """One server of the backend as HAProxy sees it."""

    name: str
    address: str
    port: int
    admin: str  # "ready", "drain" or "maint"
    up: bool  # HAProxy's operational state: its health checks pass (or it just left maint)
    check_passed: bool  # the latest health check passed
    weight: int


def proxy_dir() -> Path:
    folder = Path(settings.DATA_DIR) / "proxy"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _paths(environment: str) -> dict[str, Path]:
    if not _NAME_RE.match(environment):
        raise ProxyError(f"environment name {environment!r} is not a short lowercase name")
    base = proxy_dir() / environment
    return {
        "cfg": base.with_suffix(".cfg"),
        "socket": base.with_suffix(".sock"),
        "pid": base.with_suffix(".pid"),
        "state": base.with_suffix(".json"),
    }


def proxy_admin_socket(*, environment: str) -> Path:
    return _paths(environment)["socket"]


def proxy_persisted_live_slot(*, environment: str) -> str | None:
    """The live slot the last proxy_start or switch recorded, or None if none did."""
    try:
        state = json.loads(_paths(environment)["state"].read_text())
    except (OSError, ValueError):
        return None
    slot = state.get("live_slot") if isinstance(state, dict) else None
    return slot if slot in SLOT_NAMES else None


def slot_of(server: str) -> str:
    """The slot a backend server belongs to: ``blue`` (one host) or ``blue-2`` (host 2)."""
    return server.split("-", 1)[0]


def tcp_admin_address(admin_socket: str | Path) -> tuple[str, int] | None:
    """``10.0.0.5:9999`` (a proxy on another machine, runtime API over TCP) → its address;
    None for a UNIX socket path."""
    match = _TCP_ADMIN_RE.match(str(admin_socket))
    return (match.group(1), int(match.group(2))) if match else None


class Proxy:
    """A running HAProxy reached through its admin socket (runtime API): a UNIX socket path,
    or ``address:port`` for one on another machine (bound to its private interface)."""

    def __init__(self, *, admin_socket: Path | str, backend: str = "app") -> None:
        self.tcp_address = tcp_admin_address(admin_socket)
        self.admin_socket = Path(admin_socket)
        self.backend = backend
        # proxy_start keeps the rendering parameters beside the socket; a switch updates them.
        # A proxy on another machine keeps its own.
        self.state_file = None if self.tcp_address else self.admin_socket.with_suffix(".json")

    def __repr__(self) -> str:
        return f"Proxy(admin_socket={str(self.admin_socket)!r}, backend={self.backend!r})"

    # --- runtime API ------------------------------------------------------------------------

    def command(self, line: str) -> str:
        """Send one runtime-API command and return HAProxy's answer."""
        if "\n" in line or ";" in line:
            raise ProxyError("one runtime-API command at a time")
        try:
            family = socket.AF_INET if self.tcp_address else socket.AF_UNIX
            with socket.socket(family, socket.SOCK_STREAM) as conn:
                conn.settimeout(ADMIN_TIMEOUT)
                conn.connect(self.tcp_address or str(self.admin_socket))
                conn.sendall(line.encode() + b"\n")
                chunks = []
                while chunk := conn.recv(65536):
                    chunks.append(chunk)
        except OSError as error:
            raise ProxyError(
                f"cannot reach HAProxy's admin socket {self.admin_socket}: {error}"
            ) from None
        return b"".join(chunks).decode(errors="replace")

    def _set_state(self, server: str, state: str) -> None:
        answer = self.command(f"set server {self.backend}/{server} state {state}").strip()
        if answer:
            raise ProxyError(f"HAProxy refused 'set server {server} state {state}': {answer}")

    def is_running(self) -> bool:
        try:
            return "Pid:" in self.command("show info")
        except ProxyError:
            return False

    def servers(self) -> dict[str, ServerState]:
        """The backend's servers from ``show servers state``."""
        answer = self.command(f"show servers state {self.backend}")
        servers: dict[str, ServerState] = {}
        for line in answer.splitlines():
            fields = line.split()
            if len(fields) < 19 or line.startswith("#"):
                continue
            if fields[1] != self.backend:
                continue
            admin_bits = int(fields[6])
            weight = int(fields[7])
            if admin_bits & _ADMF_MAINT:
                admin = "maint"
            elif admin_bits & _ADMF_DRAIN or weight == 0:
                admin = "drain"
            else:
                admin = "ready"
            servers[fields[3]] = ServerState(
                name=fields[3],
                address=fields[4],
                port=int(fields[18]),
                admin=admin,
                up=int(fields[5]) == _OP_RUNNING,
                check_passed=int(fields[10]) == _CHECK_L7_OK,
                weight=weight,
            )
        if not servers:
            raise ProxyError(f"HAProxy has no backend {self.backend!r}: {answer.strip()[:200]}")
        return servers

    def server_states(self) -> dict[str, str]:
        """Administrative state per server, e.g. ``{"blue": "ready", "green": "drain"}``."""
        return {name: server.admin for name, server in self.servers().items()}

    def routed_slot(self) -> str | None:
        """The one slot HAProxy really sends new requests to (its servers ready and up, on
        every host that is up); None if no slot or both qualify."""
        routed = {slot_of(n) for n, s in self.servers().items() if s.admin == "ready" and s.up}
        return routed.pop() if len(routed) == 1 else None

    # --- switching --------------------------------------------------------------------------

    def _wait_healthy(self, names: list[str], timeout: float) -> list[str]:
        """The servers among ``names`` whose checks still fail when ``timeout`` is up."""
        deadline = time.monotonic() + timeout
        while True:
            servers = self.servers()
            failing = [n for n in names if not (servers[n].up and servers[n].check_passed)]
            if not failing or time.monotonic() >= deadline:
                return failing
            time.sleep(POLL_INTERVAL)

    def switch_to(self, slot: str, *, check_timeout: float = SWITCH_CHECK_TIMEOUT) -> float:
        """Route new requests to ``slot`` (its server on every host) and drain the other;
        return the seconds taken.

        Refuses (ProxyError, routing unchanged) unless HAProxy's own health check passes on
        every server of ``slot``. The new servers are made ready before the old ones drain, so
        there is never a moment with no ready server; requests already running on the old
        ones finish there.
        """
        started = time.monotonic()
        if slot not in SLOT_NAMES:
            raise ProxyError(f"slot must be one of {', '.join(SLOT_NAMES)}, not {slot!r}")
        servers = self.servers()
        targets = [name for name in servers if slot_of(name) == slot]
        if not targets:
            raise ProxyError(f"HAProxy backend {self.backend!r} has no server for {slot!r}")
        from_maint = [name for name in targets if servers[name].admin == "maint"]
        for name in from_maint:
            # Out of maintenance into drain: health-checked, still no traffic.
            self._set_state(name, "drain")
        failing = self._wait_healthy(targets, check_timeout)
        if failing:
            for name in from_maint:
                self._set_state(name, "maint")
            where = ", ".join(f"{servers[n].address}:{servers[n].port}" for n in failing)
            raise ProxyError(
                f"HAProxy's health check does not pass on {slot} ({where}); "
                "traffic stays where it was"
            )
        for name in targets:
            self._set_state(name, "ready")
        for name, server in servers.items():
            if slot_of(name) != slot and server.admin == "ready":
                self._set_state(name, "drain")
        routed = self.routed_slot()
        if routed != slot:
            raise ProxyError(f"after the switch HAProxy routes to {routed!r}, not {slot!r}")
        self._persist_live_slot(slot)
        return time.monotonic() - started

    def _persist_live_slot(self, slot: str) -> None:
        if self.state_file is None:
            return
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return  # not started by proxy_start: nothing of ours to keep in step
        state["live_slot"] = slot
        _write_state_and_config(self.state_file, state)


# --- the HAProxy process ----------------------------------------------------------------------

_CONFIG_TEMPLATE = """\
# Written by deployments/proxy.py for environment {environment}: the live slot ({live_slot}) is
# ready, the other starts in maintenance. Rewritten on every proxy_start and switch.
global
    stats socket {socket} mode 600 level admin
    stats timeout 10s
    hard-stop-after {hard_stop_after}s
    maxconn 4000

defaults
    mode http
    # Keep-alive on both sides (HAProxy's default mode): each request is balanced on its own,
    # so open client connections follow a switch; idle server connections are reused.
    option http-keep-alive
    http-reuse safe
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout queue 5s
    # A request sent on a reused idle connection that the app closed at that very instant
    # is sent again. Connection failures are not retried: they would hide a slot restarted
    # in place for a few seconds, and a switch never routes to a slot that is not up.
    retries 2
    retry-on empty-response

frontend web
    bind 127.0.0.1:{listen_port}
    # The client's address for the app's per-address limits (SWEDIFY_TRUSTED_PROXIES): an
    # X-Forwarded-For the client sent is kept, and the address HAProxy saw is appended last.
    option forwardfor
    # Bodies the app would never read (its API takes 64 KB) are refused before a slot sees them.
    http-request deny deny_status 413 if {{ req.hdr_val(content-length) gt 1048576 }}
    default_backend app

backend app
    balance roundrobin
    option httpchk GET /health
    http-check send hdr Host {health_host}
    http-check expect status 200
    # A slot that is down (not started yet) is checked often, so one just started is up
    # within a fraction of a second; rise/fall transitions are checked fast too.
    default-server inter {check_interval}ms fastinter 200ms downinter 250ms fall 2 rise 2
    server blue 127.0.0.1:{blue_port} check{blue_disabled}
    server green 127.0.0.1:{green_port} check{green_disabled}
"""


# Several app hosts: every host's blue and green server, HAProxy's health checks decide which
# of them are up, and a request that a dying host could not answer is retried on another.
_HOSTS_TEMPLATE = """\
# Written by deployments/proxy.py for proxy {environment}: every host's {live_slot} server is
# ready, the others start in maintenance. Rewritten on every proxy_start and switch.
global
    stats socket {socket} mode 600 level admin
    stats timeout 10s
    hard-stop-after {hard_stop_after}s
    maxconn 4000

defaults
    mode http
    option http-keep-alive
    http-reuse safe
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout queue 5s
{retry_options}
frontend web
    bind {listen_address}:{listen_port}
    # The client's address for the app's per-address limits (SWEDIFY_TRUSTED_PROXIES): an
    # X-Forwarded-For the client sent is kept, and the address HAProxy saw is appended last.
    option forwardfor
    # Bodies the app would never read (its API takes 64 KB) are refused before a slot sees them.
    http-request deny deny_status 413 if {{ req.hdr_val(content-length) gt 1048576 }}
    default_backend app

backend app
    balance roundrobin
{check_options}{servers}
"""

# A host that dies (its gunicorn killed, the machine gone) is taken out by the health checks
# within ``fall`` failed checks; until then a request it could not answer is sent to another
# host. L7 retries (anything beyond a refused connection) replay a request that may already
# have reached the app, so only methods that are idempotent by definition are replayed.
_RETRY_OPTIONS = """\
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout 502 503
"""
_CHECK_OPTIONS = """\
    acl idempotent method GET HEAD OPTIONS PUT DELETE
    http-request disable-l7-retry unless idempotent
    option httpchk GET /health
    http-check send hdr Host {health_host}
    http-check expect status 200
    default-server inter {check_interval}ms fastinter 200ms downinter 250ms fall 2 rise 2
"""


def _render_hosts_config(state: dict) -> str:
    live, ha = state["live_slot"], state.get("ha", True)
    lines = []
    for index, (address, blue_port, green_port) in enumerate(state["servers"], start=1):
        for slot, port in (("blue", blue_port), ("green", green_port)):
            check = " check" if ha else ""
            disabled = "" if slot == live else " disabled"
            lines.append(f"    server {slot}-{index} {address}:{int(port)}{check}{disabled}")
    socket_spec = state["socket"]
    if tcp_admin_address(socket_spec):
        socket_spec = f"ipv4@{socket_spec}"
    return _HOSTS_TEMPLATE.format(
        environment=state["environment"],
        live_slot=live,
        socket=socket_spec,
        hard_stop_after=HARD_STOP_AFTER_S,
        retry_options=_RETRY_OPTIONS if ha else "",
        listen_address=state.get("listen_address", "127.0.0.1"),
        listen_port=int(state["listen_port"]),
        check_options=_CHECK_OPTIONS.format(
            health_host=state["health_host"], check_interval=CHECK_INTERVAL_MS
        )
        if ha
        else "",
        servers="\n".join(lines),
    )


def proxy_config_render(
    *,
    name: str,
    listen_address: str,
    listen_port: int,
    admin_socket: str,
    servers: list[tuple[str, int, int]],
    live_slot: str,
    health_host: str = "127.0.0.1",
) -> str:
    """The configuration of a proxy that runs on another machine (installed there as its
    ``haproxy.cfg``): the same one ``proxy_start`` writes for a proxy on this machine."""
    return _render_hosts_config(
        {
            "environment": name,
            "live_slot": live_slot,
            "socket": admin_socket,
            "listen_address": listen_address,
            "listen_port": listen_port,
            "health_host": health_host,
            "servers": [[a, int(b), int(g)] for a, b, g in servers],
        }
    )


def _render_config(state: dict) -> str:
    if "servers" in state:
        return _render_hosts_config(state)
    live = state["live_slot"]
    return _CONFIG_TEMPLATE.format(
        environment=state["environment"],
        live_slot=live,
        socket=state["socket"],
        hard_stop_after=HARD_STOP_AFTER_S,
        listen_port=int(state["listen_port"]),
        health_host=state["health_host"],
        check_interval=CHECK_INTERVAL_MS,
        blue_port=int(state["blue_port"]),
        green_port=int(state["green_port"]),
        blue_disabled="" if live == "blue" else " disabled",
        green_disabled="" if live == "green" else " disabled",
    )


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


def _write_state_and_config(state_file: Path, state: dict) -> None:
    _atomic_write(state_file.with_suffix(".cfg"), _render_config(state))
    _atomic_write(state_file, json.dumps(state, indent=2, sort_keys=True) + "\n")


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().split()
    except OSError:
        return None
    return int(text[0]) if text and text[0].isdigit() else None


def _haproxy_alive(pid: int) -> bool:
    from deployments.slots import process_alive

    if not process_alive(pid):
        return False
    try:
        return b"haproxy" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True


def haproxy_installed() -> bool:
    return Path(HAPROXY_BIN).is_file() and os.access(HAPROXY_BIN, os.X_OK)


def proxy_start(
    *,
    environment: str,
    listen_port: int,
    blue_port: int = 0,
    green_port: int = 0,
    live_slot: str | None = None,
    health_host: str = "127.0.0.1",
    servers: list[tuple[str, int, int]] | None = None,
    listen_address: str = "127.0.0.1",
    ha: bool = True,
) -> Proxy:
    """Write the config and start HAProxy (master-worker, daemonised).

    One host: ``blue_port`` and ``green_port`` on 127.0.0.1 (servers ``blue`` and ``green``).
    Several: ``servers`` lists each host's (address, blue port, green port) and the proxy
    listens on ``listen_address``; ``ha`` False leaves out the health checks and retries (only
    the tests' negative control does). ``environment`` names the files (one proxy of an
    environment of several proxies has a name of its own).

    ``live_slot`` None means the persisted one (blue if none was ever recorded). The idle
    slot is put in drain once HAProxy is up so its health is checked before any switch. If
    this HAProxy already runs with the same servers it is returned untouched (routing
    unchanged); with other servers it is an error (proxy_stop or proxy_reload).
    """
    if not haproxy_installed():
        raise ProxyError(f"{INSTALL_HINT} (looked for {HAPROXY_BIN})")
    live_slot = live_slot or proxy_persisted_live_slot(environment=environment) or "blue"
    if live_slot not in SLOT_NAMES:
        raise ProxyError(f"live slot must be one of {', '.join(SLOT_NAMES)}, not {live_slot!r}")
    paths = _paths(environment)
    if len(str(paths["socket"])) > MAX_SOCKET_PATH:
        raise ProxyError(f"admin socket path too long for AF_UNIX: {paths['socket']}")
    proxy = Proxy(admin_socket=paths["socket"])
    expected = _expected_servers(servers, blue_port, green_port)
    pid = _read_pid(paths["pid"])
    if pid is not None and _haproxy_alive(pid):
        if not proxy.is_running():
            # Never a second HAProxy beside it: with SO_REUSEPORT both would take the port,
            # and the one nobody can reach would keep routing.
            raise ProxyError(
                f"HAProxy {environment} (pid {pid}) runs but its admin socket "
                f"{paths['socket']} does not answer; stop it (manage.py proxy … stop)"
            )
        running = {(s.address, s.port) for s in proxy.servers().values()}
        if running == expected:
            return proxy
        raise ProxyError(
            f"HAProxy for {environment} already runs with other ports or hosts; stop it"
        )

    state = {
        "environment": environment,
        "listen_port": listen_port,
        "blue_port": blue_port,
        "green_port": green_port,
        "live_slot": live_slot,
        "health_host": health_host,
        "socket": str(paths["socket"]),
    }
    if servers is not None:
        state.update(
            servers=[[a, int(b), int(g)] for a, b, g in servers],
            listen_address=listen_address,
            ha=ha,
        )
    _write_state_and_config(paths["state"], state)
    _check_config(paths["cfg"])
    with contextlib.suppress(FileNotFoundError):
        paths["socket"].unlink()
    launched = subprocess.run(
        [HAPROXY_BIN, "-W", "-D", "-f", str(paths["cfg"]), "-p", str(paths["pid"])],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    if launched.returncode != 0:
        raise ProxyError(f"HAProxy did not start: {(launched.stderr or launched.stdout)[-800:]}")
    deadline = time.monotonic() + START_TIMEOUT
    while not proxy.is_running():
        if time.monotonic() >= deadline:
            proxy_stop(environment=environment, graceful=False)
            raise ProxyError(f"HAProxy started but its admin socket does not answer: {launched}")
        time.sleep(POLL_INTERVAL)
    _drain_idle(proxy, live_slot)
    return proxy


def _expected_servers(
    servers: list[tuple[str, int, int]] | None, blue_port: int, green_port: int
) -> set[tuple[str, int]]:
    if servers is None:
        return {("127.0.0.1", int(blue_port)), ("127.0.0.1", int(green_port))}
    return {(a, int(p)) for a, b, g in servers for p in (b, g)}


def _check_config(cfg: Path) -> None:
    check = subprocess.run(
        [HAPROXY_BIN, "-c", "-q", "-f", str(cfg)],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    if check.returncode != 0:
        raise ProxyError(f"HAProxy rejects {cfg}: {(check.stderr or check.stdout)[-800:]}")


def _drain_idle(proxy: Proxy, live_slot: str) -> None:
    """Idle servers out of maintenance into drain: health-checked, given no traffic."""
    for name, server in proxy.servers().items():
        if slot_of(name) != live_slot and server.admin == "maint":
            proxy._set_state(name, "drain")


def proxy_reload(*, environment: str, servers: list[tuple[str, int, int]], live_slot: str) -> Proxy:
    """Rewrites a running multi-host proxy's servers (a host added, removed or disabled) and
    reloads it without dropping a connection (master-worker: SIGUSR2 starts new workers on
    the new configuration; the old ones finish their requests)."""
    paths = _paths(environment)
    pid = _read_pid(paths["pid"])
    if pid is None or not _haproxy_alive(pid):
        raise ProxyError(f"HAProxy {environment} is not running; start it instead")
    try:
        state = json.loads(paths["state"].read_text())
    except (OSError, ValueError) as error:
        raise ProxyError(
            f"HAProxy {environment} has no state file to reload from: {error}"
        ) from None
    if "servers" not in state:
        raise ProxyError(f"HAProxy {environment} is a single-host proxy; stop and start it")
    state.update(servers=[[a, int(b), int(g)] for a, b, g in servers], live_slot=live_slot)
    _write_state_and_config(paths["state"], state)
    _check_config(paths["cfg"])
    proxy = Proxy(admin_socket=paths["socket"])
    expected = _expected_servers(servers, 0, 0)
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        with contextlib.suppress(ProxyError):
            if {(s.address, s.port) for s in proxy.servers().values()} == expected:
                break
        if time.monotonic() >= deadline:
            raise ProxyError(f"HAProxy {environment} did not reload within {START_TIMEOUT:g} s")
        time.sleep(POLL_INTERVAL)
    _drain_idle(proxy, live_slot)
    return proxy


def proxy_stop(*, environment: str, graceful: bool = True) -> None:
    """Stop this environment's HAProxy: a soft stop lets open requests finish (bounded by
    ``hard-stop-after``), then SIGTERM and SIGKILL. Not running is a no-op."""
    paths = _paths(environment)
    pid = _read_pid(paths["pid"])
    if pid is not None and _haproxy_alive(pid):
        steps = [(signal.SIGUSR1, HARD_STOP_AFTER_S + 1.0)] if graceful else []
        steps += [(signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)]
        for signum, wait in steps:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
            deadline = time.monotonic() + wait
            while _haproxy_alive(pid) and time.monotonic() < deadline:
                time.sleep(POLL_INTERVAL)
            if not _haproxy_alive(pid):
                break
        if _haproxy_alive(pid):
            raise ProxyError(f"HAProxy for {environment} (pid {pid}) would not stop")
    for name in ("pid", "socket"):
        with contextlib.suppress(FileNotFoundError):
            paths[name].unlink()
