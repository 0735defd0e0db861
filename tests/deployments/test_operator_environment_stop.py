"""Stopping `make run` leaves a deployed environment's HAProxy and slot gunicorns running
(they are detached on purpose, so traffic survives a worker restart); `manage.py
environment_stop` stops them, and frees their ports."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from deployments.adapters import Infrastructure, use_infrastructure
from deployments.models import AuditEvent, Environment
from deployments.proxy import proxy_admin_socket, proxy_stop
from deployments.services import environment_configure, environment_lock_acquire
from deployments.shutdown import environment_stop
from deployments.slots import slot_start, slot_status, slot_stop
from tests.deployments.bluegreen import SLOT_ENV, free_port, head_release, running_proxy
from tests.deployments.fakes import FakeInfrastructure

pytestmark = pytest.mark.django_db


def test_it_stops_the_proxy_and_both_slots_and_records_who_did(
    infra: FakeInfrastructure,
) -> None:
    production = Environment.objects.get(name="production")
    for slot, port in (("blue", production.blue_port), ("green", production.green_port)):
        infra.slot_start(environment="production", slot=slot, port=port, version="r1")

    notes = environment_stop(environment=production, actor_name="cli:ops")

    assert infra.proxy_stops == ["production"]
    assert not infra.proxies["production"].running
    assert set(infra.stops) >= {("production", "blue"), ("production", "green")}
    assert "127.0.0.1 blue: stopped" in notes
    assert "127.0.0.1 green: stopped" in notes
    event = AuditEvent.objects.get(action="environment.stop")
    assert (event.actor_name, event.object_repr) == ("cli:ops", str(production))
    # The lock it held while stopping is free again.
    production.refresh_from_db()
    assert production.lock_holder == ""


def test_it_refuses_while_a_deploy_holds_the_environment(infra: FakeInfrastructure) -> None:
    production = Environment.objects.get(name="production")
    environment_lock_acquire(environments=[production], holder="run:7")

    with pytest.raises(CommandError, match=r"production: .*run:7"):
        call_command("environment_stop", "production")
    assert (infra.stops, infra.proxy_stops) == ([], [])


def test_the_command_needs_names_or_all_and_knows_the_environments(
    infra: FakeInfrastructure, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(CommandError, match="name the environments"):
        call_command("environment_stop")
    with pytest.raises(CommandError, match="there is no environment qa"):
        call_command("environment_stop", "qa")

    call_command("environment_stop", "--all")

    out = capsys.readouterr().out
    assert "staging: 127.0.0.1 blue: was not running" in out
    assert sorted(infra.proxy_stops) == ["production", "staging"]


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def staging() -> Iterator[Environment]:
    environment = environment_configure(
        name="staging",
        blue_port=free_port(),
        green_port=free_port(),
        listen_port=free_port(),
        admin_socket=str(proxy_admin_socket(environment="staging")),
    )
    try:
        with use_infrastructure(Infrastructure(slot_env=SLOT_ENV)):
            yield environment
    finally:
        with contextlib.suppress(Exception):
            proxy_stop(environment="staging", graceful=False)
        for slot in ("blue", "green"):
            with contextlib.suppress(Exception):
                slot_stop(environment="staging", slot=slot)


@pytest.mark.integration
@pytest.mark.slow
def test_a_real_haproxy_and_two_slot_gunicorns_are_stopped_and_their_ports_freed(
    staging: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    source = head_release()
    for slot in ("blue", "green"):
        slot_start(
            environment="staging",
            slot=slot,
            port=staging.port_of(slot),
            version=f"r-{slot}",
            source_dir=source,
            env=SLOT_ENV,
        )
    with running_proxy(
        environment="staging", blue_port=staging.blue_port, green_port=staging.green_port
    ) as (_, listen_port):
        ports = [staging.blue_port, staging.green_port, listen_port]
        assert all(port_open(port) for port in ports)

        call_command("environment_stop", "staging")

        assert [port_open(port) for port in ports] == [False, False, False]
        assert slot_status(environment="staging", slot="blue") is None
        assert slot_status(environment="staging", slot="green") is None
    out = capsys.readouterr().out
    assert "staging: 127.0.0.1 blue: stopped" in out
    assert "HAProxy stopped" in out
