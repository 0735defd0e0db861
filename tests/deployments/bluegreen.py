"""Helpers for the real blue-green tests: free ports, the HEAD release, slots and an HAProxy
that are always stopped again (context managers), and the HAProxy precondition."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from deployments import proxy as proxy_module
from deployments.proxy import Proxy, proxy_start, proxy_stop
from deployments.slots import SlotProcess, release_source, slot_start, slot_stop

# A real key so the slots' production guard (DEBUG off) lets them boot.
SLOT_ENV = {"SECRET_KEY": "blue-green-test-secret-key-not-the-development-one"}

# Several machines on this one: app "hosts" and proxies on loopback addresses of their own.
HOSTS = ("127.0.0.2", "127.0.0.3")
PROXY_ADDRESSES = ("127.0.0.4", "127.0.0.5")
# The slots answer requests addressed to a host or a proxy (as production lists its names).
HA_SLOT_ENV = {
    **SLOT_ENV,
    "ALLOWED_HOSTS": ",".join(["127.0.0.1", "localhost", *HOSTS, *PROXY_ADDRESSES]),
}


def require_haproxy() -> None:
    """The blue-green proof needs a real HAProxy: without one the test fails, never skips."""
    if not proxy_module.haproxy_installed():
        pytest.fail(
            f"HAProxy is not installed ({proxy_module.HAPROXY_BIN}): apt-get install haproxy",
            pytrace=False,
        )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def new_environment() -> str:
    """A unique environment name so parallel runs never share pid files or sockets."""
    return f"t{uuid.uuid4().hex[:10]}"


def head_release() -> Path:
    sha = subprocess.run(
        ["git", "-C", str(settings.BASE_DIR), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return release_source(git_sha=sha)


@contextlib.contextmanager
def running_slot(
    *, environment: str, slot: str, version: str, source_dir: Path, port: int | None = None
) -> Iterator[SlotProcess]:
    port = port or free_port()
    try:
        yield slot_start(
            environment=environment,
            slot=slot,
            port=port,
            version=version,
            source_dir=source_dir,
            env=SLOT_ENV,
        )
    finally:
        slot_stop(environment=environment, slot=slot)


@contextlib.contextmanager
def running_proxy(
    *, environment: str, blue_port: int, green_port: int, live_slot: str | None = "blue"
) -> Iterator[tuple[Proxy, int]]:
    require_haproxy()
    listen_port = free_port()
    try:
        proxy = proxy_start(
            environment=environment,
            listen_port=listen_port,
            blue_port=blue_port,
            green_port=green_port,
            live_slot=live_slot,
        )
        yield proxy, listen_port
    finally:
        proxy_stop(environment=environment, graceful=False)


def served_version(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as response:
        return json.loads(response.read())["version"]
