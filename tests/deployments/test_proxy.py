"""The HAProxy adapter against a real HAProxy and real app slots on loopback."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deployments import proxy as proxy_module
from deployments.proxy import (
    Proxy,
    ProxyError,
    proxy_persisted_live_slot,
    proxy_start,
    proxy_stop,
)
from deployments.slots import process_alive
from tests.deployments.bluegreen import (
    free_port,
    head_release,
    new_environment,
    require_haproxy,
    running_proxy,
    running_slot,
    served_version,
)


@dataclass
class BlueGreen:
    environment: str
    proxy: Proxy
    listen_port: int
    blue_port: int
    green_port: int
    blue_pid: int | None


@contextlib.contextmanager
def blue_green(*, green_running: bool = True) -> Iterator[BlueGreen]:
    """Blue (1.0.0) live behind HAProxy, green (1.0.1) idle; everything stopped afterwards."""
    require_haproxy()
    environment, source = new_environment(), head_release()
    green_port = free_port()
    with contextlib.ExitStack() as stack:
        blue = stack.enter_context(
            running_slot(environment=environment, slot="blue", version="1.0.0", source_dir=source)
        )
        if green_running:
            stack.enter_context(
                running_slot(
                    environment=environment,
                    slot="green",
                    version="1.0.1",
                    source_dir=source,
                    port=green_port,
                )
            )
        proxy, listen_port = stack.enter_context(
            running_proxy(environment=environment, blue_port=blue.port, green_port=green_port)
        )
        yield BlueGreen(environment, proxy, listen_port, blue.port, green_port, blue.pid)


@pytest.fixture(scope="module")
def shared_slots() -> Iterator[tuple[int, int]]:
    """Two slots for the tests that leave them running (each test has its own HAProxy)."""
    require_haproxy()
    environment, source = new_environment(), head_release()
    with contextlib.ExitStack() as stack:
        blue, green = (
            stack.enter_context(
                running_slot(environment=environment, slot=slot, version=version, source_dir=source)
            )
            for slot, version in (("blue", "1.0.0"), ("green", "1.0.1"))
        )
        yield blue.port, green.port


@pytest.fixture
def bg(shared_slots: tuple[int, int]) -> Iterator[BlueGreen]:
    """Blue (1.0.0) live behind a fresh HAProxy, green (1.0.1) idle."""
    blue_port, green_port = shared_slots
    proxy_environment = new_environment()  # its own proxy files; the slots are shared
    with running_proxy(
        environment=proxy_environment, blue_port=blue_port, green_port=green_port
    ) as (proxy, listen_port):
        yield BlueGreen(proxy_environment, proxy, listen_port, blue_port, green_port, None)


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.integration
def test_a_switch_routes_new_requests_to_the_new_slot(bg: BlueGreen) -> None:
    assert bg.proxy.is_running()
    assert bg.proxy.routed_slot() == "blue"
    assert served_version(bg.listen_port) == "1.0.0"
    seconds = bg.proxy.switch_to("green")
    assert 0 <= seconds < 5
    assert bg.proxy.routed_slot() == "green"
    assert bg.proxy.server_states() == {"blue": "drain", "green": "ready"}
    assert {served_version(bg.listen_port) for _ in range(20)} == {"1.0.1"}


@pytest.mark.integration
def test_an_open_keep_alive_connection_follows_the_switch(bg: BlueGreen) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", bg.listen_port, timeout=3)
    try:
        versions = []
        for step in range(2):
            connection.request("GET", "/health")
            response = connection.getresponse()
            versions.append(json.loads(response.read())["version"])
            assert not response.will_close
            client_socket = connection.sock
            if step == 0:
                bg.proxy.switch_to("green")
        assert versions == ["1.0.0", "1.0.1"]
        assert connection.sock is client_socket  # the same TCP connection served both
    finally:
        connection.close()


@pytest.mark.integration
def test_routed_slot_tells_the_truth_when_the_live_slot_dies() -> None:
    with blue_green() as bg:
        os.killpg(os.getpgid(bg.blue_pid), signal.SIGKILL)
        assert wait_until(lambda: not process_alive(bg.blue_pid))
        # HAProxy notices within two failed checks, one second apart.
        assert wait_until(lambda: bg.proxy.routed_slot() is None, timeout=5)
        assert bg.proxy.server_states()["blue"] == "ready"
        assert bg.proxy.servers()["blue"].up is False


@pytest.mark.integration
def test_a_switch_to_a_slot_that_fails_its_health_check_is_refused() -> None:
    with blue_green(green_running=False) as bg:
        with pytest.raises(ProxyError, match="health check does not pass on green"):
            bg.proxy.switch_to("green", check_timeout=1.5)
        assert bg.proxy.routed_slot() == "blue"
        assert served_version(bg.listen_port) == "1.0.0"
        with pytest.raises(ProxyError, match="slot must be one of"):
            bg.proxy.switch_to("purple")


@pytest.mark.integration
def test_a_proxy_restart_keeps_the_persisted_live_slot(bg: BlueGreen) -> None:
    bg.proxy.switch_to("green")
    assert proxy_persisted_live_slot(environment=bg.environment) == "green"
    config = Path(bg.proxy.admin_socket).with_suffix(".cfg").read_text()
    assert f"server green 127.0.0.1:{bg.green_port} check\n" in config
    assert f"server blue 127.0.0.1:{bg.blue_port} check disabled\n" in config

    proxy_stop(environment=bg.environment)
    assert not bg.proxy.is_running()
    restarted = proxy_start(
        environment=bg.environment,
        listen_port=bg.listen_port,
        blue_port=bg.blue_port,
        green_port=bg.green_port,
    )
    assert restarted.routed_slot() == "green"
    assert served_version(bg.listen_port) == "1.0.1"
    # The idle slot is health-checked again at once, so a rollback is one switch away.
    assert restarted.server_states() == {"blue": "drain", "green": "ready"}
    assert restarted.switch_to("blue") < 5
    assert served_version(bg.listen_port) == "1.0.0"


@pytest.mark.integration
def test_starting_a_running_proxy_again_leaves_its_routing_alone(bg: BlueGreen) -> None:
    bg.proxy.switch_to("green")
    again = proxy_start(
        environment=bg.environment,
        listen_port=bg.listen_port,
        blue_port=bg.blue_port,
        green_port=bg.green_port,
        live_slot="blue",
    )
    assert again.routed_slot() == "green"
    with pytest.raises(ProxyError, match="other ports"):
        proxy_start(
            environment=bg.environment,
            listen_port=bg.listen_port,
            blue_port=free_port(),
            green_port=bg.green_port,
        )


def test_an_unreachable_proxy_is_a_proxy_error(tmp_path: Path) -> None:
    proxy = Proxy(admin_socket=tmp_path / "nothing.sock")
    assert proxy.is_running() is False
    with pytest.raises(ProxyError, match="cannot reach HAProxy's admin socket"):
        proxy.routed_slot()


def test_without_haproxy_starting_fails_with_the_install_hint(monkeypatch) -> None:
    monkeypatch.setattr(proxy_module, "HAPROXY_BIN", "/nonexistent/haproxy")
    with pytest.raises(ProxyError, match="apt-get install haproxy"):
        proxy_start(
            environment=new_environment(),
            listen_port=free_port(),
            blue_port=free_port(),
            green_port=free_port(),
        )
