from __future__ import annotations

from datetime import timedelta

import pytest

from deployments.adapters import use_infrastructure
from deployments.models import PipelineRun, Rollback
from deployments.pipeline import pipeline_run_create, pipeline_run_execute
from deployments.reports import rollback_over_budget, run_over_budget, run_report_markdown
from deployments.services import release_create
from tests.deployments.fakes import FAST_PIPELINE, FakeInfrastructure, make_environments

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(settings) -> PipelineRun:
    settings.SWEDIFY_PIPELINE_OVERRIDES = FAST_PIPELINE
    fake = FakeInfrastructure(failing_commands={"dependency-audit"})
    make_environments(fake)
    with use_infrastructure(fake):
        created = pipeline_run_create(release=release_create(git_sha="a" * 40), actor_name="ann")
        return pipeline_run_execute(run_id=created.pk)


def test_the_report_is_the_seeds_stage_table_with_durations(run: PipelineRun) -> None:
    report = run_report_markdown(run)

    assert report.startswith("# Deployment Report\n")
    assert "| Stage | Status |\n|-------|--------|\n| Quality checks | success |\n" in report
    assert "| Security scan | failure (continued with warning) |" in report
    assert "| Traffic cutover | success |" in report
    assert "| Production health | 1/5 |" in report
    assert "## Warnings" in report
    assert "FLAG" not in report


def test_a_run_over_five_minutes_is_flagged(run: PipelineRun) -> None:
    PipelineRun.objects.filter(pk=run.pk).update(
        finished_at=run.started_at + timedelta(minutes=5, seconds=1)
    )
    run.refresh_from_db()
    assert run_over_budget(run)
    assert "**FLAG: the run took longer than 5 minutes.**" in run_report_markdown(run)


def test_the_analysis_window_is_not_deploy_time(run: PipelineRun) -> None:
    """Five minutes of watching the new release after its cutover do not flag the run."""
    PipelineRun.objects.filter(pk=run.pk).update(finished_at=run.started_at + timedelta(minutes=6))
    analysis = run.stages.get(key="analysis")
    type(analysis).objects.filter(pk=analysis.pk).update(
        started_at=run.started_at + timedelta(seconds=30),
        finished_at=run.started_at + timedelta(minutes=5, seconds=30),
    )
    run.refresh_from_db()

    assert run.deploy_seconds == 60
    assert not run_over_budget(run)


def test_a_rollback_over_one_minute_is_flagged(run: PipelineRun) -> None:
    rollback = Rollback.objects.create(
        environment=run.environments.get(name="production"),
        from_release=run.release,
        to_release=run.release,
        trigger="automatic",
        mode="redeploy",
        run=run,
        reason="test",
        status="succeeded",
        duration_seconds=61.0,
    )
    assert rollback_over_budget(rollback)
    assert "over the 1 minute budget" in run_report_markdown(run)
    Rollback.objects.filter(pk=rollback.pk).update(duration_seconds=4.0)
    rollback.refresh_from_db()
    assert not rollback_over_budget(rollback)
