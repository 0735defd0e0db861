"""An environment of several app hosts and proxies (fakes): every host's slot is started
and gated before traffic moves, and the cutover switches every proxy or none."""

from __future__ import annotations

import pytest

from deployments import services
from deployments.models import Environment, HealthCheck, PipelineRun
from deployments.pipeline import pipeline_run_create, pipeline_run_execute
from deployments.rollbacks import rollback_start
from deployments.services import (
    DeploymentError,
    environment_host_add,
    environment_host_set_enabled,
    release_create,
)
from tests.deployments.fakes import FakeInfrastructure, FakeProxy

pytestmark = pytest.mark.django_db

HOSTS = ("127.0.0.2", "127.0.0.3")


@pytest.fixture
def hosts(infra: FakeInfrastructure, settings) -> FakeInfrastructure:
    settings.SWEDIFY_PIPELINE_OVERRIDES = {
        **settings.SWEDIFY_PIPELINE_OVERRIDES,
        "cleanup": {"enabled": False},
    }
    production = Environment.objects.get(name="production")
    for address in HOSTS:
        environment_host_add(
            environment=production, address=address, blue_port=19001, green_port=19002
        )
    infra.more_proxies["production"] = [FakeProxy()]
    return infra


def deploy(sha: str) -> PipelineRun:
    run = pipeline_run_create(release=release_create(git_sha=sha), actor_name="t", queue=False)
    return pipeline_run_execute(run_id=run.pk)


def production() -> Environment:
    return Environment.objects.select_related("live_release").get(name="production")


def routed(infra: FakeInfrastructure) -> list[str | None]:
    return [proxy.routed for _, proxy in infra.environment_proxies(production())]


def test_a_deploy_starts_the_release_on_every_host_and_switches_every_proxy(
    hosts: FakeInfrastructure,
) -> None:
    assert deploy("a" * 40).status == "succeeded"
    assert deploy("b" * 40).status == "succeeded"

    started = [s for s in hosts.starts if s[0] == "production"]
    assert started == [
        ("production", "blue", "r1", "127.0.0.2"),
        ("production", "blue", "r1", "127.0.0.3"),
        ("production", "green", "r2", "127.0.0.2"),
        ("production", "green", "r2", "127.0.0.3"),
    ]
    assert routed(hosts) == ["green", "green"]
    gates = HealthCheck.objects.filter(
        source="pipeline", slot="green", environment__name="production"
    )
    assert sorted(c.url.split("/")[2] for c in gates) == ["127.0.0.2:19002", "127.0.0.3:19002"]


def test_one_host_failing_its_gate_stops_the_deploy_before_any_traffic_moves(
    hosts: FakeInfrastructure,
) -> None:
    deploy("a" * 40)
    hosts.unhealthy_hosts = {"127.0.0.3"}

    run = deploy("b" * 40)

    gate = run.stages.get(key="production_health")
    assert (run.status, gate.outcome, gate.attempts) == ("failed", "failed", gate.max_attempts)
    assert "unhealthy on 1 of 2 hosts: 127.0.0.3" in gate.summary
    assert run.stages.get(key="cutover").outcome == "skipped"
    assert routed(hosts) == ["blue", "blue"]
    assert (production().live_slot, production().live_release.label) == ("blue", "r1")


def test_one_host_that_cannot_start_the_release_stops_the_deploy(
    hosts: FakeInfrastructure,
) -> None:
    deploy("a" * 40)
    hosts.failing_start_hosts = {"127.0.0.2"}

    run = deploy("b" * 40)

    stage = run.stages.get(key="production_deploy")
    assert run.status == "failed"
    assert "did not start on every host: 127.0.0.2: RuntimeError" in stage.summary
    assert routed(hosts) == ["blue", "blue"]


def test_a_proxy_that_cannot_be_switched_puts_the_others_back_and_fails_the_stage(
    hosts: FakeInfrastructure,
) -> None:
    deploy("a" * 40)
    hosts.more_proxies["production"][0].fail_switch = True

    run = deploy("b" * 40)

    cutover = run.stages.get(key="cutover")
    assert (cutover.outcome, cutover.action_applied) == ("failed", "skip")
    assert "could not be switched to green" in cutover.summary
    assert "switched back: production-1" in cutover.summary
    assert routed(hosts) == ["blue", "blue"]  # all or nothing
    assert hosts.proxies["production"].switches[-2:] == ["green", "blue"]
    assert (production().live_slot, production().live_release.label) == ("blue", "r1")


def test_without_the_switch_back_the_same_failure_leaves_the_proxies_split(
    hosts: FakeInfrastructure, monkeypatch
) -> None:
    """Negative control: the check above must see a half-switched cutover if one happened."""
    deploy("a" * 40)
    hosts.more_proxies["production"][0].fail_switch = True
    monkeypatch.setattr(services, "proxies_switch_back", lambda switched: "disabled")

    deploy("b" * 40)

    assert routed(hosts) == ["green", "blue"]


def test_a_rollback_switches_every_proxy_back(hosts: FakeInfrastructure) -> None:
    deploy("a" * 40)
    deploy("b" * 40)

    rollback = rollback_start(environment=production(), reason="errors", actor_name="ops")

    assert (rollback.mode, rollback.status) == ("switch_back", "succeeded")
    assert routed(hosts) == ["blue", "blue"]
    checked = HealthCheck.objects.filter(source="rollback", slot="blue")
    assert sorted(c.url.split("/")[2] for c in checked) == ["127.0.0.2:19001", "127.0.0.3:19001"]


def test_a_rollback_redeploys_only_on_the_host_whose_old_slot_is_gone(
    hosts: FakeInfrastructure,
) -> None:
    deploy("a" * 40)
    deploy("b" * 40)
    hosts.slots.pop(("production", "blue", "127.0.0.3"))
    starts = len(hosts.starts)

    rollback = rollback_start(environment=production(), reason="errors", actor_name="ops")

    assert (rollback.mode, rollback.status) == ("redeploy", "succeeded")
    assert hosts.starts[starts:] == [("production", "blue", "r1", "127.0.0.3")]
    assert routed(hosts) == ["blue", "blue"]


def test_a_disabled_host_gets_no_deploy_and_the_last_one_cannot_be_disabled(
    hosts: FakeInfrastructure,
) -> None:
    environment_host_set_enabled(environment=production(), address="127.0.0.3", enabled=False)
    deploy("a" * 40)
    assert {s[3] for s in hosts.starts if s[0] == "production"} == {"127.0.0.2"}
    with pytest.raises(DeploymentError, match="last enabled host"):
        environment_host_set_enabled(environment=production(), address="127.0.0.2", enabled=False)
