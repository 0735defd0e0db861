from __future__ import annotations

import pytest

from deployments.adapters import use_infrastructure
from deployments.models import Environment, PipelineRun
from deployments.pipeline import pipeline_run_create, pipeline_run_execute
from deployments.rollbacks import rollback_start
from deployments.services import release_create
from tests.deployments.fakes import FAST_PIPELINE, FakeInfrastructure, make_environments

pytestmark = pytest.mark.django_db


@pytest.fixture
def infra(settings):
    settings.SWEDIFY_PIPELINE_OVERRIDES = {
        **FAST_PIPELINE,
        "cleanup": {"params": {"drain_seconds": 5, "rollback_window_seconds": 30}},
    }
    fake = FakeInfrastructure()
    make_environments(fake)
    with use_infrastructure(fake):
        yield fake


def deploy(sha: str) -> PipelineRun:
    run = pipeline_run_create(release=release_create(git_sha=sha), actor_name="t")
    return pipeline_run_execute(run_id=run.pk)


def test_cleanup_waits_out_the_rollback_window_before_stopping_the_old_slot(
    infra: FakeInfrastructure,
) -> None:
    deploy("a" * 40)
    infra.sleeps.clear()
    run = deploy("b" * 40)

    assert run.status == "succeeded"
    # Staging waits for its drain; production for the rollback window since its cutover.
    assert infra.sleeps[0] == 5
    assert 29 < infra.sleeps[1] <= 30
    assert ("production", "blue") in infra.stops


def test_a_remote_cutover_keeps_the_old_slot_for_the_dns_ttl(infra: FakeInfrastructure) -> None:
    Environment.objects.filter(name="production").update(dns_ttl_seconds=300)
    deploy("a" * 40)
    infra.sleeps.clear()
    deploy("b" * 40)

    assert 299 < infra.sleeps[1] <= 300


def test_a_rollback_inside_the_window_switches_back_and_cleanup_spares_that_slot(
    infra: FakeInfrastructure,
) -> None:
    deploy("a" * 40)
    rollbacks = []

    def operator_rolls_back_while_cleanup_waits(seconds: float) -> None:
        if seconds > 20 and not rollbacks:
            production = Environment.objects.get(name="production")
            rollbacks.append(rollback_start(environment=production, reason="5xx", actor_name="o"))

    infra.sleep = operator_rolls_back_while_cleanup_waits
    run = deploy("b" * 40)

    assert run.status == "succeeded"
    assert (rollbacks[0].mode, rollbacks[0].status) == ("switch_back", "succeeded")
    production = Environment.objects.get(name="production")
    assert (production.live_slot, production.live_release.label) == ("blue", "r1")
    assert ("production", "blue") not in infra.stops
    assert "serves again" in run.stages.get(key="cleanup").summary
    # The run still released its lock (the rollback borrowed it, did not take it over).
    assert production.lock_holder == ""
