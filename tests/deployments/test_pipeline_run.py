from __future__ import annotations

import pytest

from deployments.adapters import use_infrastructure
from deployments.models import (
    AuditEvent,
    Deployment,
    Environment,
    HealthCheck,
    PipelineRun,
    StageRun,
)
from deployments.pipeline import (
    PIPELINE,
    pipeline_definition,
    pipeline_run_create,
    pipeline_run_execute,
)
from deployments.services import DeploymentError, release_create
from tests.deployments.fakes import FAST_PIPELINE, FakeInfrastructure, make_environments

pytestmark = pytest.mark.django_db


def deploy(sha: str) -> PipelineRun:
    release = release_create(git_sha=sha, actor_name="test")
    run = pipeline_run_create(release=release, actor_name="test")
    return pipeline_run_execute(run_id=run.pk)


def test_the_default_pipeline_follows_the_seeds_order_and_actions() -> None:
    assert [(s.key, s.failure_action, s.max_attempts) for s in PIPELINE] == [
        ("quality", "block", 1),
        ("security", "continue", 1),
        ("staging_deploy", "block", 1),
        ("staging_health", "block", 3),
        ("production_deploy", "abort", 1),
        ("production_health", "abort", 5),
        ("cutover", "skip", 1),
        ("analysis", "abort", 1),
        ("cleanup", "skip", 1),
    ]
    assert {s.key: s.delay_seconds for s in PIPELINE}["production_health"] == 5


def test_overrides_adjust_stages_and_unknown_ones_are_refused(settings) -> None:
    settings.SWEDIFY_PIPELINE_OVERRIDES = {"staging_health": {"max_attempts": 7}}
    assert {s.key: s.max_attempts for s in pipeline_definition()}["staging_health"] == 7
    settings.SWEDIFY_PIPELINE_OVERRIDES = {"nonsense": {}}
    with pytest.raises(DeploymentError, match="unknown stages"):
        pipeline_definition()


def test_a_first_deploy_goes_live_in_both_environments(infra: FakeInfrastructure) -> None:
    run = deploy("a" * 40)

    assert run.status == PipelineRun.Status.SUCCEEDED, run.error
    outcomes = list(run.stages.values_list("key", "outcome"))
    assert all(outcome == "succeeded" for _, outcome in outcomes), outcomes
    assert infra.commands == ["lint-check", "unit-tests", "migrations-check", "dependency-audit"]
    assert infra.proxies["production"].switches == ["blue"]
    assert infra.proxies["staging"].switches == ["blue"]
    production = Environment.objects.get(name="production")
    assert (production.live_slot, production.live_release.label) == ("blue", "r1")
    assert production.lock_holder == ""
    states = list(
        Deployment.objects.get(environment=production).statuses.values_list("state", flat=True)
    )
    assert states == ["queued", "in_progress", "success"]
    assert HealthCheck.objects.filter(run=run, source="pipeline").count() == 2


def test_a_second_deploy_uses_the_idle_slot_and_cleans_up_the_old_one(
    infra: FakeInfrastructure,
) -> None:
    deploy("a" * 40)
    run = deploy("b" * 40)

    assert run.status == PipelineRun.Status.SUCCEEDED, run.error
    assert infra.proxies["production"].switches == ["blue", "green"]
    assert ("production", "blue") in infra.stops
    assert ("production", "green", "r2") in infra.starts
    first, second = Deployment.objects.filter(environment__name="production").order_by("id")
    assert (first.state, second.state) == ("inactive", "success")
    cleanup = run.stages.get(key="cleanup")
    assert "stopped blue" in cleanup.summary


def test_each_stage_keeps_the_definition_it_started_with(infra: FakeInfrastructure) -> None:
    run = deploy("a" * 40)
    health = run.stages.get(key="production_health")
    assert (health.failure_action, health.max_attempts, health.delay_seconds) == ("abort", 5, 0.01)
    assert health.params == {"environment": "production", "promote": False}


def test_without_a_staging_environment_its_stages_are_skipped(settings) -> None:
    settings.SWEDIFY_PIPELINE_OVERRIDES = FAST_PIPELINE
    fake = FakeInfrastructure()
    make_environments(fake)
    Environment.objects.filter(name="staging").delete()
    with use_infrastructure(fake):
        run = deploy("c" * 40)
    assert run.status == PipelineRun.Status.SUCCEEDED, run.error
    staging = run.stages.get(key="staging_deploy")
    assert (staging.outcome, staging.action_applied) == ("skipped", "skip")
    assert "no staging environment" in staging.summary


def test_a_redelivered_task_does_not_run_the_pipeline_twice(infra: FakeInfrastructure) -> None:
    release = release_create(git_sha="d" * 40)
    run = pipeline_run_create(release=release, actor_name="test")
    pipeline_run_execute(run_id=run.pk)
    commands = len(infra.commands)
    again = pipeline_run_execute(run_id=run.pk)
    assert again.status == PipelineRun.Status.SUCCEEDED
    assert len(infra.commands) == commands
    assert StageRun.objects.filter(run=run, attempts__gt=1).count() == 0
    assert AuditEvent.objects.filter(action="run.succeeded", object_id=str(run.pk)).count() == 1


def test_the_task_runs_a_queued_run(infra: FakeInfrastructure) -> None:
    from deployments.tasks import pipeline_run_task

    release = release_create(git_sha="e" * 40)
    run = pipeline_run_create(release=release, actor_name="test")
    assert pipeline_run_task(run.pk) == "succeeded"
    assert pipeline_run_task(999_999) == "missing"


def test_release_versions_only_increase_and_a_bad_sha_is_refused() -> None:
    assert [release_create(git_sha=c * 40).version for c in "abc"] == [1, 2, 3]
    with pytest.raises(DeploymentError, match="not a git commit SHA"):
        release_create(git_sha="not-a-sha")
    with pytest.raises(DeploymentError, match="needs the reason"):
        release_create(git_sha="f" * 40, rollback_safe=False)


def test_the_first_cutover_starts_a_stopped_proxy_on_the_new_slot(
    infra: FakeInfrastructure,
) -> None:
    infra.proxies["production"].running = False
    run = deploy("a" * 40)

    assert run.status == PipelineRun.Status.SUCCEEDED, run.error
    assert ("production", "blue") in infra.proxy_starts
    assert infra.proxies["production"].routed == "blue"
