"""The real pipeline and a rollback against a real HAProxy and real gunicorn slots: the same
code the operators run, with only the quality and security commands left out (they have their
own tests and take minutes)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from deployments.adapters import Infrastructure, use_infrastructure
from deployments.models import Environment, HealthCheck
from deployments.pipeline import pipeline_run_create, pipeline_run_execute
from deployments.proxy import Proxy, proxy_admin_socket, proxy_stop
from deployments.rollbacks import rollback_start
from deployments.services import environment_configure, release_create
from deployments.slots import slot_stop
from tests.deployments.bluegreen import (
    SLOT_ENV,
    free_port,
    head_release,
    require_haproxy,
    served_version,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

PIPELINE = {
    "quality": {"enabled": False},
    "security": {"enabled": False},
    "production_health": {"delay_seconds": 1},
    # The analysis has its own real-HAProxy tests; here one look after the cutover.
    "analysis": {"params": {"window_seconds": 0}},
    # The old slot stays warm: the rollback below is a switch back.
    "cleanup": {"enabled": False},
}


@pytest.fixture
def production(settings) -> Iterator[Environment]:
    require_haproxy()
    settings.SWEDIFY_PIPELINE_OVERRIDES = PIPELINE
    environment = environment_configure(
        name="production",
        blue_port=free_port(),
        green_port=free_port(),
        listen_port=free_port(),
        admin_socket=str(proxy_admin_socket(environment="production")),
    )
    try:
        with use_infrastructure(Infrastructure(slot_env=SLOT_ENV)):
            yield environment
    finally:
        with contextlib.suppress(Exception):
            proxy_stop(environment="production", graceful=False)
        for slot in ("blue", "green"):
            with contextlib.suppress(Exception):
                slot_stop(environment="production", slot=slot)


def test_the_pipeline_deploys_two_releases_and_a_rollback_switches_back_through_haproxy(
    production: Environment,
) -> None:
    sha = head_release().name  # the export's folder is the full SHA
    r1, r2 = release_create(git_sha=sha), release_create(git_sha=sha)
    proxy = Proxy(admin_socket=proxy_admin_socket(environment="production"))

    first = pipeline_run_execute(
        run_id=pipeline_run_create(release=r1, actor_name="t", queue=False).pk
    )
    assert first.status == "succeeded", first.error
    assert (proxy.routed_slot(), served_version(production.listen_port)) == ("blue", "r1")

    second = pipeline_run_execute(
        run_id=pipeline_run_create(release=r2, actor_name="t", queue=False).pk
    )
    assert second.status == "succeeded", second.error
    assert (proxy.routed_slot(), served_version(production.listen_port)) == ("green", "r2")
    gate = HealthCheck.objects.filter(run=second, source="pipeline").latest("at")
    assert (gate.ok, gate.version, gate.slot) == (True, "r2", "green")

    rollback = rollback_start(
        environment=Environment.objects.get(pk=production.pk), reason="test", actor_name="t"
    )

    assert (rollback.mode, rollback.status) == ("switch_back", "succeeded"), rollback.error
    assert (proxy.routed_slot(), served_version(production.listen_port)) == ("blue", "r1")
    live = Environment.objects.select_related("live_release").get(pk=production.pk)
    assert (live.live_slot, live.live_release.label) == ("blue", "r1")
    assert HealthCheck.objects.filter(source="rollback", slot="blue", ok=True).exists()
