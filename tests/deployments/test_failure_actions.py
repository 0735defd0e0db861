from __future__ import annotations

import pytest

from deployments.models import Environment, PipelineRun, Rollback
from deployments.pipeline import (
    pipeline_run_abort,
    pipeline_run_create,
    pipeline_run_execute,
    pipeline_run_override,
    pipeline_run_retry,
)
from deployments.services import DeploymentError, release_create
from tests.deployments.fakes import FAST_PIPELINE, FakeInfrastructure

pytestmark = pytest.mark.django_db


def start(sha: str) -> PipelineRun:
    release = release_create(git_sha=sha)
    run = pipeline_run_create(release=release, actor_name="test")
    return pipeline_run_execute(run_id=run.pk)


def test_block_pauses_the_run_before_anything_is_deployed(infra: FakeInfrastructure) -> None:
    infra.failing_commands = {"unit-tests"}
    run = start("a" * 40)

    assert run.status == PipelineRun.Status.PAUSED
    quality = run.stages.get(key="quality")
    assert (quality.outcome, quality.action_applied) == ("failed", "block")
    assert "unit-tests" in quality.summary
    assert "1 problem found" in quality.log
    assert run.stages.filter(outcome="pending").count() == 8
    assert infra.starts == []
    # The paused run still holds the lock: nobody else deploys over it.
    assert Environment.objects.get(name="production").lock_holder == run.lock_name


def test_an_operator_retry_reruns_the_blocked_stage(infra: FakeInfrastructure) -> None:
    infra.failing_commands = {"unit-tests"}
    run = start("a" * 40)
    infra.failing_commands = set()

    pipeline_run_retry(run=run, actor_name="operator")
    run = pipeline_run_execute(run_id=run.pk)

    assert run.status == PipelineRun.Status.SUCCEEDED, run.error
    quality = run.stages.get(key="quality")
    assert (quality.outcome, quality.action_applied) == ("succeeded", "retry")
    assert "attempt 1/1: failed" in quality.log


def test_an_override_needs_a_reason_and_records_who_and_why(
    infra: FakeInfrastructure, django_user_model
) -> None:
    infra.failing_commands = {"unit-tests"}
    run = start("a" * 40)
    operator = django_user_model.objects.create_user("ops", is_staff=True)

    with pytest.raises(DeploymentError, match="needs a reason"):
        pipeline_run_override(run=run, reason="  ", actor=operator)
    pipeline_run_override(run=run, reason="flaky test, known issue #12", actor=operator)
    run = pipeline_run_execute(run_id=run.pk)

    assert run.status == PipelineRun.Status.SUCCEEDED, run.error
    quality = run.stages.get(key="quality")
    assert (quality.outcome, quality.action_applied) == ("failed", "override")
    assert (quality.overridden_by, quality.override_reason) == (
        operator,
        "flaky test, known issue #12",
    )


def test_an_operator_abort_ends_the_run_and_frees_the_lock(infra: FakeInfrastructure) -> None:
    infra.failing_commands = {"unit-tests"}
    run = start("a" * 40)

    pipeline_run_abort(run=run, reason="wrong commit", actor_name="operator")

    run.refresh_from_db()
    assert run.status == PipelineRun.Status.ABORTED
    assert set(run.stages.exclude(key="quality").values_list("outcome", flat=True)) == {"skipped"}
    assert Environment.objects.filter(lock_holder="").count() == 2
    with pytest.raises(DeploymentError, match="neither queued, paused nor running"):
        pipeline_run_abort(run=run, reason="again", actor_name="operator")


def test_continue_records_a_warning_and_goes_on(infra: FakeInfrastructure) -> None:
    infra.failing_commands = {"dependency-audit"}
    run = start("a" * 40)

    assert run.status == PipelineRun.Status.SUCCEEDED
    security = run.stages.get(key="security")
    assert (security.outcome, security.action_applied) == ("failed", "continue")
    assert any("Security scan failed (continued)" in w for w in run.warnings)
    assert Environment.objects.get(name="production").live_release.label == "r1"


def test_skip_after_a_failed_cutover_leaves_the_old_slot_serving(
    infra: FakeInfrastructure,
) -> None:
    start("a" * 40)
    infra.proxies["production"].fail_switch = True
    run = start("b" * 40)

    assert run.status == PipelineRun.Status.SUCCEEDED
    cutover = run.stages.get(key="cutover")
    assert (cutover.outcome, cutover.action_applied) == ("failed", "skip")
    assert any("Traffic cutover failed (skipped)" in w for w in run.warnings)
    production = Environment.objects.get(name="production")
    assert (production.live_slot, production.live_release.label) == ("blue", "r1")
    assert infra.proxies["production"].routed == "blue"
    assert ("production", "blue") not in infra.stops


def test_a_stage_disabled_in_the_definition_is_not_run(settings, infra: FakeInfrastructure) -> None:
    settings.SWEDIFY_PIPELINE_OVERRIDES = {**FAST_PIPELINE, "security": {"enabled": False}}
    run = start("a" * 40)

    security = run.stages.get(key="security")
    assert (security.outcome, security.action_applied, security.attempts) == ("skipped", "skip", 0)
    assert "dependency-audit" not in infra.commands
    assert run.status == PipelineRun.Status.SUCCEEDED


def test_abort_after_the_cutover_switches_back_automatically(
    settings, infra: FakeInfrastructure
) -> None:
    start("a" * 40)
    settings.SWEDIFY_PIPELINE_OVERRIDES = {**FAST_PIPELINE, "cleanup": {"failure_action": "abort"}}
    infra.fail_stop = True
    run = start("b" * 40)

    assert run.status == PipelineRun.Status.FAILED
    cleanup = run.stages.get(key="cleanup")
    assert (cleanup.outcome, cleanup.action_applied) == ("failed", "abort")
    assert infra.proxies["production"].switches == ["blue", "green", "blue"]
    production = Environment.objects.get(name="production")
    assert (production.live_slot, production.live_release.label) == ("blue", "r1")
    rollback = Rollback.objects.get(run=run)
    assert (rollback.trigger, rollback.mode, rollback.status) == (
        "automatic",
        "switch_back",
        "succeeded",
    )
    assert (rollback.from_release.label, rollback.to_release.label) == ("r2", "r1")
    assert production.lock_holder == ""


def test_a_run_whose_worker_died_can_be_aborted_once_stale(infra: FakeInfrastructure) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from deployments.models import StageRun

    run = pipeline_run_create(release=release_create(git_sha="a" * 40), actor_name="test")
    # What a worker killed mid-stage leaves behind.
    PipelineRun.objects.filter(pk=run.pk).update(status="running", started_at=timezone.now())
    StageRun.objects.filter(run=run, key="quality").update(outcome="running")
    with pytest.raises(DeploymentError, match="running for over 30 minutes"):
        pipeline_run_abort(run=run, reason="stuck", actor_name="ops")

    PipelineRun.objects.filter(pk=run.pk).update(started_at=timezone.now() - timedelta(hours=1))
    pipeline_run_abort(run=run, reason="worker died", actor_name="ops")

    run.refresh_from_db()
    assert run.status == PipelineRun.Status.ABORTED
    quality = run.stages.get(key="quality")
    assert (quality.outcome, quality.summary) == ("failed", "interrupted: its worker stopped")
    assert Environment.objects.filter(lock_holder="").count() == 2


def test_a_deploy_stage_whose_tooling_breaks_records_an_error_deployment(
    settings, infra: FakeInfrastructure
) -> None:
    from deployments.models import Deployment

    settings.SWEDIFY_PIPELINE_OVERRIDES = {
        **FAST_PIPELINE,
        "staging_deploy": {"failure_action": "abort"},
    }

    def broken_start(**kwargs):
        raise OSError("gunicorn not found")

    infra.slot_start = broken_start
    run = start("a" * 40)

    assert run.status == PipelineRun.Status.FAILED
    assert "OSError: gunicorn not found" in run.stages.get(key="staging_deploy").summary
    deployment = Deployment.objects.get(run=run)
    assert list(deployment.statuses.values_list("state", flat=True)) == [
        "queued",
        "in_progress",
        "error",
    ]


def test_a_retried_staging_gate_that_passes_promotes_the_same_deployment(
    infra: FakeInfrastructure,
) -> None:
    from deployments.models import Deployment

    infra.unhealthy_versions = {"r1"}
    run = start("a" * 40)
    assert run.status == PipelineRun.Status.PAUSED
    assert run.stages.get(key="staging_health").attempts == 3

    infra.unhealthy_versions = set()
    pipeline_run_retry(run=run, actor_name="operator")
    run = pipeline_run_execute(run_id=run.pk)

    assert run.status == PipelineRun.Status.SUCCEEDED, run.error
    staging = Deployment.objects.get(run=run, environment__name="staging")
    assert staging.state == "success"
    assert Environment.objects.get(name="staging").live_release.label == "r1"
