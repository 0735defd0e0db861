"""The real pipeline and a rollback across two app hosts (127.0.0.2, 127.0.0.3) and two real
HAProxies (127.0.0.4, 127.0.0.5) that the first cutover starts. Each host's slots are reached
through the per-host interface of ``Infrastructure``; here a stand-in for the deploy agent
runs them on this machine, bound to the host's address (the agent's own tests cover the
agent)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks.load import LoadGenerator
from deployments.adapters import Infrastructure, use_infrastructure
from deployments.models import Environment, HealthCheck, HostRef
from deployments.pipeline import pipeline_run_create, pipeline_run_execute
from deployments.proxy import Proxy, proxy_admin_socket, proxy_stop
from deployments.rollbacks import rollback_start
from deployments.services import (
    environment_configure,
    environment_host_add,
    environment_proxy_add,
    release_create,
)
from deployments.slots import release_source, slot_start, slot_status, slot_stop
from tests.deployments.bluegreen import (
    HA_SLOT_ENV,
    HOSTS,
    PROXY_ADDRESSES,
    free_port,
    head_release,
    require_haproxy,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

PIPELINE = {
    "quality": {"enabled": False},
    "security": {"enabled": False},
    "production_health": {"delay_seconds": 1},
    # The analysis has its own real-HAProxy tests; here one look after the cutover.
    "analysis": {"params": {"window_seconds": 0}},
    "cleanup": {"enabled": False},
}


class BoundSlots:
    """What a host's agent does, done here: slots bound to the host's address, their files
    kept apart per host."""

    def __init__(self, address: str, tag: str) -> None:
        self.address, self.tag = address, tag

    def _name(self, environment: str) -> str:
        return f"{self.tag}-{self.address.rsplit('.', 1)[1]}"

    def slot_start(self, *, environment: str, slot: str, port: int, version: str,
                   git_sha: str, env: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
        process = slot_start(
            environment=self._name(environment),
            slot=slot,
            port=port,
            version=version,
            source_dir=release_source(git_sha=git_sha),
            env=env,
            bind=self.address,
        )
        return {"running": True, "port": process.port, "version": process.version}

    def slot_stop(self, *, environment: str, slot: str, drain_seconds: float = 0.0) -> dict:
        slot_stop(environment=self._name(environment), slot=slot)
        return {}

    def slot_status(self, *, environment: str, slot: str) -> dict[str, Any]:
        process = slot_status(environment=self._name(environment), slot=slot)
        if process is None:
            return {"running": False}
        return {"running": True, "port": process.port, "version": process.version}


class LoopbackHosts(Infrastructure):
    tag: str = ""

    def remote_host(self, host: HostRef) -> BoundSlots:
        return BoundSlots(host.address, self.tag)


@pytest.fixture
def production(settings) -> Iterator[tuple[Environment, list[str]]]:
    require_haproxy()
    settings.SWEDIFY_PIPELINE_OVERRIDES = PIPELINE
    tag = f"x{uuid.uuid4().hex[:8]}"
    blue, green = free_port(), free_port()
    environment = environment_configure(name="production", blue_port=blue, green_port=green)
    for host in HOSTS:
        environment_host_add(
            environment=environment, address=host, blue_port=blue, green_port=green
        )
    names, urls = [f"{tag}-p1", f"{tag}-p2"], []
    for name, address in zip(names, PROXY_ADDRESSES, strict=True):
        port = free_port()
        environment_proxy_add(environment=environment, name=name, address=address, listen_port=port)
        urls.append(f"http://{address}:{port}")
    infrastructure = LoopbackHosts(slot_env=HA_SLOT_ENV)
    infrastructure.tag = tag
    try:
        with use_infrastructure(infrastructure):
            yield environment, urls
    finally:
        for name in names:
            with contextlib.suppress(Exception):
                proxy_stop(environment=name, graceful=False)
        for host in HOSTS:
            for slot in ("blue", "green"):
                with contextlib.suppress(Exception):
                    slot_stop(environment=f"{tag}-{host.rsplit('.', 1)[1]}", slot=slot)


def deploy(release: Any) -> None:
    run = pipeline_run_create(release=release, actor_name="t", queue=False)
    run = pipeline_run_execute(run_id=run.pk)
    assert run.status == "succeeded", (
        run.error,
        list(run.stages.values_list("summary", flat=True)),
    )


def proxies_routing(environment: Environment) -> list[str | None]:
    return [
        Proxy(admin_socket=proxy_admin_socket(environment=ref.name)).routed_slot()
        for ref in environment.proxy_refs()
    ]


def test_a_release_goes_live_on_every_host_behind_every_proxy_and_rolls_back(
    production: tuple[Environment, list[str]],
) -> None:
    environment, urls = production
    sha = head_release().name
    r1, r2 = release_create(git_sha=sha), release_create(git_sha=sha)

    deploy(r1)
    assert proxies_routing(environment) == ["blue", "blue"]
    deploy(r2)
    assert proxies_routing(environment) == ["green", "green"]
    gates = HealthCheck.objects.filter(source="pipeline", slot="green", ok=True)
    assert sorted(g.url.split("/")[2].split(":")[0] for g in gates) == list(HOSTS)

    generators = [
        LoadGenerator(url, threads=2, max_seconds=20, max_requests=20_000) for url in urls
    ]
    with contextlib.ExitStack() as exits:
        for generator in generators:
            exits.enter_context(generator)
        for generator in generators:
            assert generator.wait_for("r2", responses=100, timeout=20)
        rollback = rollback_start(
            environment=Environment.objects.get(pk=environment.pk), reason="t", actor_name="t"
        )
        for generator in generators:
            assert generator.wait_for("r1", responses=100, timeout=20)

    assert (rollback.mode, rollback.status) == ("switch_back", "succeeded"), rollback.error
    assert proxies_routing(environment) == ["blue", "blue"]
    for generator in generators:
        assert generator.result.failed == 0, generator.result.summary()
