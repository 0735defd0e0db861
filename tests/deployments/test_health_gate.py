from __future__ import annotations

import pytest

from deployments.adapters import use_infrastructure
from deployments.models import Deployment, Environment, HealthCheck, PipelineRun
from deployments.pipeline import pipeline_run_create, pipeline_run_execute
from deployments.services import release_create
from tests.deployments.fakes import FAST_PIPELINE, FakeInfrastructure, make_environments

pytestmark = pytest.mark.django_db


@pytest.fixture
def infra(settings):
    settings.SWEDIFY_PIPELINE_OVERRIDES = {
        **FAST_PIPELINE,
        # Staging is not the gate under test here.
        "staging_deploy": {"enabled": False},
        "staging_health": {"enabled": False},
    }
    fake = FakeInfrastructure()
    make_environments(fake)
    with use_infrastructure(fake):
        yield fake


def start(sha: str) -> PipelineRun:
    release = release_create(git_sha=sha)
    run = pipeline_run_create(release=release, actor_name="test")
    return pipeline_run_execute(run_id=run.pk)


def test_a_health_gate_that_never_passes_keeps_the_old_slot_serving(
    infra: FakeInfrastructure,
) -> None:
    start("a" * 40)
    infra.unhealthy_versions = {"r2"}
    run = start("b" * 40)

    assert run.status == PipelineRun.Status.FAILED
    health = run.stages.get(key="production_health")
    assert (health.outcome, health.action_applied, health.attempts) == ("failed", "abort", 5)
    assert list(
        run.stages.filter(position__gt=health.position).values_list("outcome", flat=True)
    ) == [
        "skipped",
        "skipped",
        "skipped",
    ]
    # Five probes of the idle slot, one recorded row each, 4 waits between them.
    checks = HealthCheck.objects.filter(run=run).order_by("at")
    assert [(c.slot, c.ok, c.http_status) for c in checks] == [("green", False, 503)] * 5
    assert infra.sleeps.count(0.01) == 4
    # The proxy was never switched: the old release keeps serving.
    assert infra.proxies["production"].switches == ["blue"]
    production = Environment.objects.get(name="production")
    assert (production.live_slot, production.live_release.label) == ("blue", "r1")
    failed = Deployment.objects.get(run=run)
    assert failed.state == "failure"
    assert production.lock_holder == ""


def test_the_gate_passes_once_the_slot_recovers_within_its_tries(
    infra: FakeInfrastructure, monkeypatch
) -> None:
    start("a" * 40)
    answers = iter([False, False, True])
    original = infra.probe

    def flaky(url: str, *, timeout: float = 3.0):
        result = original(url, timeout=timeout)
        if "19002" in url and not next(answers, True):
            result.http_status, result.body = None, {}
            result.error = "Connection refused"
        return result

    monkeypatch.setattr(infra, "probe", flaky)
    run = start("b" * 40)

    assert run.status == PipelineRun.Status.SUCCEEDED, run.error
    assert run.stages.get(key="production_health").attempts == 3
    assert infra.proxies["production"].routed == "green"


def test_a_slot_serving_the_wrong_version_does_not_pass(infra: FakeInfrastructure) -> None:
    start("a" * 40)
    original = infra.slot_start

    def stale_start(**kwargs):
        info = original(**kwargs)
        info.version = "r1"  # an old process still bound to the port
        return info

    infra.slot_start = stale_start
    run = start("b" * 40)

    assert run.status == PipelineRun.Status.FAILED
    check = HealthCheck.objects.filter(run=run).first()
    assert "serves version r1, expected r2" in check.error
    assert infra.proxies["production"].routed == "blue"
