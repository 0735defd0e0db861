"""Operators add and remove hosts and proxies with environment_configure, and `manage.py
proxy` names every way a proxy differs from the database."""

from __future__ import annotations

import subprocess

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from deployments.adapters import use_infrastructure
from deployments.models import AppHost, AuditEvent, Environment, ProxyInstance
from deployments.proxy import ServerState
from tests.deployments.fakes import FakeInfrastructure, FakeProxy

pytestmark = pytest.mark.django_db


def configure(*args: str) -> None:
    call_command("environment_configure", "production", *args)


def test_hosts_and_proxies_are_added_disabled_and_removed_from_the_command_line(capsys) -> None:
    configure("--blue-port", "8001", "--green-port", "8002")
    configure("--add-host", "10.0.0.11", "--add-host", "10.0.0.12")
    configure("--add-host", "10.0.0.13", "--host-blue-port", "9001", "--host-green-port", "9002")
    configure("--add-proxy", "lb1", "--proxy-address", "10.0.0.5", "--proxy-port", "80",
              "--proxy-admin", "10.0.0.5:9999")  # fmt: skip
    configure("--add-proxy", "lb2", "--proxy-address", "127.0.0.1", "--proxy-port", "8080")
    configure("--disable-host", "10.0.0.12", "--remove-host", "10.0.0.13")

    production = Environment.objects.get(name="production")
    assert [(h.address, h.blue_port, h.green_port) for h in production.app_hosts()] == [
        ("10.0.0.11", 8001, 8002)
    ]
    assert AppHost.objects.get(address="10.0.0.12").enabled is False
    proxies = {p.name: p for p in ProxyInstance.objects.all()}
    assert proxies["lb1"].admin_socket == "10.0.0.5:9999"
    assert proxies["lb2"].admin_socket.endswith("/proxy/lb2.sock")
    assert (
        "hosts 10.0.0.11 (blue 8001, green 8002); proxies lb1 (10.0.0.5:80)"
        in (capsys.readouterr().out.splitlines()[-1])
    )
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {
        "environment.host_add",
        "environment.host_disable",
        "environment.host_remove",
    } <= actions


def test_a_proxy_on_another_machine_needs_its_runtime_api_address() -> None:
    configure("--blue-port", "8001", "--green-port", "8002")
    with pytest.raises(CommandError, match="needs its admin socket as address:port"):
        configure("--add-proxy", "lb1", "--proxy-address", "10.0.0.5", "--proxy-port", "80")


def test_a_new_environment_needs_its_ports() -> None:
    with pytest.raises(CommandError, match="give --blue-port and --green-port"):
        configure("--add-host", "10.0.0.11")


def server(address: str, port: int, admin: str) -> ServerState:
    return ServerState("x", address, port, admin, True, True, 1)


def test_the_proxy_command_names_each_difference_of_every_proxy(capsys) -> None:
    configure("--blue-port", "8001", "--green-port", "8002")
    configure("--add-host", "10.0.0.11", "--add-host", "10.0.0.12")
    configure("--add-proxy", "lb1", "--proxy-port", "8080")
    configure("--add-proxy", "lb2", "--proxy-port", "8081", "--proxy-address", "127.0.0.2")
    Environment.objects.filter(name="production").update(live_slot="blue")
    agreeing = FakeProxy(
        routed="blue",
        servers_state={
            "blue-1": server("10.0.0.11", 8001, "ready"),
            "green-1": server("10.0.0.11", 8002, "drain"),
            "blue-2": server("10.0.0.12", 8001, "ready"),
            "green-2": server("10.0.0.12", 8002, "drain"),
        },
    )
    stale = FakeProxy(
        routed="blue",
        servers_state={
            "blue-1": server("10.0.0.11", 8001, "ready"),
            "green-1": server("10.0.0.11", 8002, "ready"),
            "blue-2": server("10.0.0.99", 8001, "ready"),
        },
    )
    infrastructure = FakeInfrastructure(
        proxies={"production": agreeing}, more_proxies={"production": [stale]}
    )
    with use_infrastructure(infrastructure):
        call_command("proxy", "production")

    out = capsys.readouterr().out
    first, second = out.split("production proxy ")[1:]
    assert "DIFFERENCE" not in first
    assert "HAProxy routes blue; the database says blue (agree)" in second
    assert "DIFFERENCE: host 10.0.0.12 blue (10.0.0.12:8001) is not in its backend" in second
    assert "DIFFERENCE: host 10.0.0.12 green (10.0.0.12:8002) is not in its backend" in second
    assert "DIFFERENCE: green-1 is the idle slot green but ready (gets traffic)" in second
    assert "DIFFERENCE: server blue-2 (10.0.0.99:8001) belongs to no enabled host" in second


def test_the_configuration_of_a_proxy_on_another_machine_is_printed_and_haproxy_accepts_it(
    capsys, tmp_path
) -> None:
    from tests.deployments.bluegreen import require_haproxy

    require_haproxy()
    configure("--blue-port", "8001", "--green-port", "8002")
    configure("--add-host", "10.0.0.11", "--add-host", "10.0.0.12")
    configure("--add-proxy", "lb1", "--proxy-address", "10.0.0.5", "--proxy-port", "80",
              "--proxy-admin", "10.0.0.5:9999")  # fmt: skip
    Environment.objects.filter(name="production").update(live_slot="green")
    capsys.readouterr()

    call_command("proxy", "production", "config", "--name", "lb1")

    config = capsys.readouterr().out
    for line in (
        "stats socket ipv4@10.0.0.5:9999 mode 600 level admin",
        "bind 10.0.0.5:80",
        "retry-on conn-failure empty-response response-timeout 502 503",
        "option redispatch 1",
        "http-request disable-l7-retry unless idempotent",
        "option httpchk GET /health",
        "server blue-1 10.0.0.11:8001 check disabled",
        "server green-2 10.0.0.12:8002 check",
    ):
        assert line in config, line
    assert "server green-2 10.0.0.12:8002 check disabled" not in config
    (tmp_path / "haproxy.cfg").write_text(config)
    from deployments.proxy import HAPROXY_BIN

    checked = subprocess.run(
        [HAPROXY_BIN, "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
