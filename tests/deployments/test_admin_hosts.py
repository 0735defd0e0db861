"""Operators add and remove hosts and proxies in the admin (through the audited services),
and the admin shows each one up or down from the periodic probes."""

from __future__ import annotations

import pytest
from django.test import Client

from deployments.models import AppHost, AuditEvent, Environment, ProxyInstance
from deployments.services import environment_host_add, environment_proxy_add
from deployments.tasks import environments_probe
from tests.deployments.fakes import FakeInfrastructure, FakeProxy

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client, django_user_model) -> Client:
    client.force_login(django_user_model.objects.create_superuser("admin", password=None))
    return client


def change_form(environment: Environment, hosts: list[dict], proxies: list[dict]) -> dict:
    data = {
        "blue_port": environment.blue_port,
        "green_port": environment.green_port,
        "listen_port": environment.listen_port,
        "admin_socket": environment.admin_socket,
        "dns_ttl_seconds": 0,
        "_save": "Save",
    }
    for prefix, rows in (("hosts", hosts), ("proxies", proxies)):
        data |= {
            f"{prefix}-TOTAL_FORMS": len(rows),
            f"{prefix}-INITIAL_FORMS": sum(1 for r in rows if r.get("id")),
            f"{prefix}-MIN_NUM_FORMS": 0,
            f"{prefix}-MAX_NUM_FORMS": 1000,
        }
        for index, row in enumerate(rows):
            data |= {f"{prefix}-{index}-{key}": value for key, value in row.items()}
            data[f"{prefix}-{index}-environment"] = environment.pk
    return data


def test_hosts_and_proxies_are_added_and_removed_in_the_admin(staff: Client, infra) -> None:
    production = Environment.objects.get(name="production")
    url = f"/admin/deployments/environment/{production.pk}/change/"
    host = {"address": "127.0.0.2", "blue_port": 19001, "green_port": 19002, "enabled": "on"}
    proxy = {"name": "lb1", "address": "127.0.0.4", "listen_port": 8080, "enabled": "on"}
    proxy["admin_socket"] = ""  # filled in by the service for a proxy on this machine

    response = staff.post(
        url, change_form(production, [host, {**host, "address": "127.0.0.3"}], [proxy])
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert list(production.hosts.values_list("address", flat=True)) == ["127.0.0.2", "127.0.0.3"]
    assert ProxyInstance.objects.get(name="lb1").admin_socket.endswith("/proxy/lb1.sock")
    assert AuditEvent.objects.filter(action="environment.host_add").count() == 2

    rows = [
        {
            **host,
            "id": h.pk,
            "address": h.address,
            "DELETE": "on" if h.address == "127.0.0.3" else "",
        }
        for h in production.hosts.all()
    ]
    proxy_row = {**proxy, "id": ProxyInstance.objects.get(name="lb1").pk, "admin_socket": ""}
    response = staff.post(url, change_form(production, rows, [proxy_row]))

    assert response.status_code == 302
    assert list(production.hosts.values_list("address", flat=True)) == ["127.0.0.2"]
    assert AuditEvent.objects.filter(action="environment.host_remove").count() == 1


def test_the_admin_shows_each_host_and_proxy_up_or_down_from_the_periodic_probe(
    staff: Client, infra: FakeInfrastructure
) -> None:
    production = Environment.objects.get(name="production")
    for address in ("127.0.0.2", "127.0.0.3"):
        environment_host_add(
            environment=production, address=address, blue_port=19001, green_port=19002
        )
    for name in ("lb1", "lb2"):
        environment_proxy_add(
            environment=production, name=name, address="127.0.0.4", listen_port=8080
        )
    infra.more_proxies["production"] = [FakeProxy(running=False)]
    infra.proxies["production"].routed = "blue"
    Environment.objects.filter(pk=production.pk).update(live_slot="blue")
    # Only host 127.0.0.2 runs its live slot.
    infra.slot_start(
        environment="production", slot="blue", port=19001, version="r1",
        host=production.app_hosts()[0],
    )  # fmt: skip

    environments_probe()

    states = dict(AppHost.objects.values_list("address", "probe_ok"))
    assert states == {"127.0.0.2": True, "127.0.0.3": False}
    assert "Connection refused" in AppHost.objects.get(address="127.0.0.3").probe_error
    proxies = {p.probe_ok: p for p in ProxyInstance.objects.all()}
    assert set(proxies) == {True, False}
    assert "runtime API does not answer" in proxies[False].probe_error
    listing = staff.get("/admin/deployments/environment/").content.decode()
    assert "1/2 hosts up" in listing
    assert "1/2 proxies up" in listing
    page = staff.get(f"/admin/deployments/environment/{production.pk}/change/").content.decode()
    assert page.count(">up<") == 2
    assert page.count(">down<") == 2
