"""The analysis stage after the cutover, with fake proxies whose counters the tests drive:
bad traffic switches every proxy back automatically, good traffic does not, an operator can
end the window early or roll back by hand, and the old slot stays warm for the whole window."""

from __future__ import annotations

import pytest

from deployments.models import AuditEvent, Deployment, Environment, PipelineRun, Rollback
from deployments.pipeline import pipeline_run_create, pipeline_run_execute, pipeline_run_promote
from deployments.rollbacks import rollback_start
from deployments.services import DeploymentError, release_create
from tests.deployments.fakes import FAST_PIPELINE, FakeInfrastructure, FakeProxy

pytestmark = pytest.mark.django_db

WINDOW = {"window_seconds": 60, "interval_seconds": 5, "max_5xx_share": 0.05}


@pytest.fixture
def two_proxies(infra: FakeInfrastructure, settings) -> list[FakeProxy]:
    """Production behind two proxies, r1 live in blue, and a 60 s analysis window."""
    second = FakeProxy()
    infra.more_proxies["production"] = [second]
    first_run = deploy("a" * 40)
    assert first_run.status == PipelineRun.Status.SUCCEEDED, first_run.error
    settings.SWEDIFY_PIPELINE_OVERRIDES = {**FAST_PIPELINE, "analysis": {"params": WINDOW}}
    return [infra.proxies["production"], second]


def deploy(sha: str) -> PipelineRun:
    release = release_create(git_sha=sha, actor_name="test")
    run = pipeline_run_create(release=release, actor_name="test", queue=False)
    return pipeline_run_execute(run_id=run.pk)


def analysis_sleeps(infra: FakeInfrastructure) -> list[float]:
    return [s for s in infra.sleeps if s >= 1]


def test_bad_traffic_switches_every_proxy_back_and_records_the_reason(
    infra: FakeInfrastructure, two_proxies: list[FakeProxy]
) -> None:
    def half_fail(seconds: float) -> None:
        for proxy in two_proxies:
            proxy.serve(ok=10, errors=10)

    infra.on_sleep.append(half_fail)
    run = deploy("b" * 40)

    assert run.status == PipelineRun.Status.FAILED
    analysis = run.stages.get(key="analysis")
    assert (analysis.outcome, analysis.action_applied) == ("failed", "abort")
    rollback = Rollback.objects.get()
    assert (rollback.trigger, rollback.mode, rollback.status) == (
        "automatic",
        "switch_back",
        "succeeded",
    )
    assert rollback.reason == "automatic: 5xx 50 % > 5 % over 5 s"
    assert (rollback.from_release.label, rollback.to_release.label, rollback.run) == (
        "r2",
        "r1",
        run,
    )
    assert [proxy.routed for proxy in two_proxies] == ["blue", "blue"]
    production = Environment.objects.get(name="production")
    assert (production.live_slot, production.live_release.label) == ("blue", "r1")
    assert production.lock_holder == ""
    failed = Deployment.objects.get(run=run, environment=production)
    assert list(failed.statuses.values_list("state", flat=True)) == [
        "queued",
        "in_progress",
        "success",
        "failure",
    ]
    assert failed.statuses.last().description == rollback.reason
    assert AuditEvent.objects.filter(action="run.analysis_failed", object_id=str(run.pk)).exists()
    assert rollback.reason in run.error
    # The first bad look decided: no waiting out the rest of the window.
    assert analysis_sleeps(infra) == [5]
    assert run.stages.get(key="cleanup").outcome == "skipped"
    assert infra.slots[("production", "blue")].version == "r1"


def test_a_clean_release_is_not_rolled_back_and_cleanup_follows_the_window(
    infra: FakeInfrastructure, two_proxies: list[FakeProxy]
) -> None:
    old_slot_warm = []

    def serve_well(seconds: float) -> None:
        for proxy in two_proxies:
            proxy.serve(ok=20, errors=0, response_ms=40)
        old_slot_warm.append(("production", "blue") in infra.slots)

    infra.on_sleep.append(serve_well)
    run = deploy("b" * 40)

    assert run.status == PipelineRun.Status.SUCCEEDED, run.error
    assert not Rollback.objects.exists()
    analysis = run.stages.get(key="analysis")
    assert analysis.summary.startswith("healthy: 0 of 480 responses 5xx over 60 s")
    assert len(analysis_sleeps(infra)) == 12
    assert 59 < sum(analysis_sleeps(infra)) <= 60
    assert [proxy.routed for proxy in two_proxies] == ["green", "green"]
    # The old slot was warm through every look of the window, and stopped only afterwards.
    assert old_slot_warm[: len(analysis_sleeps(infra))] == [True] * len(analysis_sleeps(infra))
    assert ("production", "blue") not in infra.slots
    assert "stopped blue" in run.stages.get(key="cleanup").summary


def test_slow_responses_roll_back_too(
    infra: FakeInfrastructure, two_proxies: list[FakeProxy]
) -> None:
    infra.on_sleep.append(lambda _: two_proxies[1].serve(ok=30, response_ms=2500))
    run = deploy("b" * 40)

    assert run.status == PipelineRun.Status.FAILED
    assert Rollback.objects.get().reason == "automatic: response time 2500 ms > 1000 ms over 5 s"


def test_a_failing_health_probe_of_the_new_slot_rolls_back(
    infra: FakeInfrastructure, two_proxies: list[FakeProxy]
) -> None:
    infra.on_sleep.append(lambda _: infra.unhealthy_versions.add("r2"))
    run = deploy("b" * 40)

    assert run.status == PipelineRun.Status.FAILED
    reason = Rollback.objects.get().reason
    assert reason.startswith("automatic: health probe of green on 127.0.0.1 failing (HTTP 503")
    assert [proxy.routed for proxy in two_proxies] == ["blue", "blue"]


def test_promote_ends_the_window_early_and_keeps_the_release(
    infra: FakeInfrastructure, two_proxies: list[FakeProxy]
) -> None:
    def promote_on_the_second_look(seconds: float) -> None:
        if len(analysis_sleeps(infra)) == 2:
            pipeline_run_promote(run=PipelineRun.objects.get(status="running"), actor_name="ann")

    infra.on_sleep.append(promote_on_the_second_look)
    run = deploy("b" * 40)

    assert run.status == PipelineRun.Status.SUCCEEDED, run.error
    assert analysis_sleeps(infra) == [5, 5]
    assert "promoted by an operator" in run.stages.get(key="analysis").summary
    assert run.context["promoted"]["by"] == "ann"
    assert AuditEvent.objects.filter(action="run.promote", actor_name="ann").count() == 1
    assert not Rollback.objects.exists()


def test_promote_is_refused_outside_an_analysis_window(
    infra: FakeInfrastructure, two_proxies: list[FakeProxy]
) -> None:
    run = deploy("b" * 40)
    with pytest.raises(DeploymentError, match="not in its analysis window"):
        pipeline_run_promote(run=run, actor_name="ann")


def test_an_operator_rolling_back_during_the_window_ends_it_without_a_second_rollback(
    infra: FakeInfrastructure, two_proxies: list[FakeProxy]
) -> None:
    def roll_back_by_hand(seconds: float) -> None:
        if len(analysis_sleeps(infra)) == 1:
            rollback_start(
                environment=Environment.objects.get(name="production"),
                reason="customers report errors",
                actor_name="ann",
                infrastructure=infra,
            )

    infra.on_sleep.append(roll_back_by_hand)
    run = deploy("b" * 40)

    assert run.status == PipelineRun.Status.FAILED
    assert "rolled back by an operator" in run.stages.get(key="analysis").summary
    rollback = Rollback.objects.get()
    assert (rollback.trigger, rollback.mode, rollback.actor_name) == (
        "manual",
        "switch_back",
        "ann",
    )
    assert [proxy.routed for proxy in two_proxies] == ["blue", "blue"]
    assert infra.slots[("production", "blue")].version == "r1"


def test_cleanup_refuses_while_the_analysis_window_is_open(infra: FakeInfrastructure) -> None:
    from deployments.stages import HANDLERS

    release = release_create(git_sha="c" * 40, actor_name="test")
    run = pipeline_run_create(release=release, actor_name="test", queue=False)
    cleanup = run.stages.get(key="cleanup")

    result = HANDLERS["cleanup"](run, cleanup, infra)

    assert (result.ok, result.summary) == (
        False,
        "the analysis window is still open; nothing stopped",
    )
    assert infra.stops == []


def test_a_first_release_has_no_window_to_wait_out(infra: FakeInfrastructure, settings) -> None:
    settings.SWEDIFY_PIPELINE_OVERRIDES = {**FAST_PIPELINE, "analysis": {"params": WINDOW}}
    run = deploy("a" * 40)

    assert run.status == PipelineRun.Status.SUCCEEDED, run.error
    assert run.stages.get(key="analysis").summary == (
        "nothing to analyse against: no earlier release served"
    )
    assert analysis_sleeps(infra) == []


def test_the_deploy_time_leaves_out_the_analysis_window(
    infra: FakeInfrastructure, two_proxies: list[FakeProxy]
) -> None:
    from datetime import timedelta

    from deployments.models import StageRun

    run = deploy("b" * 40)
    analysis = run.stages.get(key="analysis")
    StageRun.objects.filter(pk=analysis.pk).update(
        finished_at=analysis.started_at + timedelta(seconds=300)
    )
    PipelineRun.objects.filter(pk=run.pk).update(
        finished_at=run.started_at + timedelta(seconds=330)
    )
    run.refresh_from_db()

    assert run.duration_seconds == 330
    assert run.deploy_seconds == 30
