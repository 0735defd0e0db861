from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from deployments.adapters import use_infrastructure
from deployments.models import Environment
from tests.deployments.fakes import FakeInfrastructure, FakeProxy

pytestmark = pytest.mark.django_db


@pytest.fixture
def production() -> Environment:
    return Environment.objects.create(
        name="production",
        listen_port=18000,
        admin_socket="/run/haproxy-production.sock",
        blue_port=18001,
        green_port=18002,
        live_slot="green",
    )


def test_status_shows_what_haproxy_routes_next_to_the_database(production, capsys) -> None:
    with use_infrastructure(FakeInfrastructure(proxies={"production": FakeProxy(routed="green")})):
        call_command("proxy", "production")
    out = capsys.readouterr().out
    assert "production: HAProxy routes green; the database says green (agree)" in out
    assert "blue: drain (port 18001)" in out


def test_status_flags_a_disagreement(production, capsys) -> None:
    with use_infrastructure(FakeInfrastructure(proxies={"production": FakeProxy(routed="blue")})):
        call_command("proxy", "production", "status")
    assert "HAProxy routes blue; the database says green (DISAGREE)" in capsys.readouterr().out


def test_a_stopped_proxy_is_named_and_start_brings_it_back_on_the_live_slot(
    production, capsys
) -> None:
    infrastructure = FakeInfrastructure(proxies={"production": FakeProxy(running=False)})
    with use_infrastructure(infrastructure):
        with pytest.raises(CommandError, match="HAProxy is not running"):
            call_command("proxy", "production")
        call_command("proxy", "production", "start")
    assert infrastructure.proxy_starts == [("production", "green")]
    assert "HAProxy routes green" in capsys.readouterr().out


def test_an_unknown_environment_or_one_without_a_proxy_is_a_clear_error(production) -> None:
    with pytest.raises(CommandError, match="there is no environment 'nowhere'"):
        call_command("proxy", "nowhere")
    Environment.objects.filter(pk=production.pk).update(admin_socket="")
    with use_infrastructure(FakeInfrastructure()), pytest.raises(CommandError, match="no proxy"):
        call_command("proxy", "production")
