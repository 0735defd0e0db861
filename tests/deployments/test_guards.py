"""The deploy guards: the database and HAProxy may disagree, and two cutovers may race; in
each case traffic stays where HAProxy really sends it and nothing serving is touched."""

from __future__ import annotations

import pytest
from django.test import Client

from deployments.adapters import use_infrastructure
from deployments.models import Deployment, Environment, HealthCheck, PipelineRun, Release
from deployments.pipeline import pipeline_run_create, pipeline_run_execute
from deployments.rollbacks import rollback_start
from deployments.services import (
    CutoverConflict,
    deployment_create,
    environment_cutover,
    release_create,
)
from tests.deployments.fakes import FAST_PIPELINE, FakeInfrastructure, FakeProxy, make_environments

pytestmark = pytest.mark.django_db


@pytest.fixture
def infra(settings):
    settings.SWEDIFY_PIPELINE_OVERRIDES = {**FAST_PIPELINE, "cleanup": {"enabled": False}}
    settings.SWEDIFY_ROLLBACK_HEALTH_ATTEMPTS = 2
    settings.SWEDIFY_ROLLBACK_HEALTH_DELAY_SECONDS = 0.01
    fake = FakeInfrastructure()
    make_environments(fake)
    with use_infrastructure(fake):
        yield fake


def deploy(sha: str) -> PipelineRun:
    run = pipeline_run_create(release=release_create(git_sha=sha), actor_name="t", queue=False)
    return pipeline_run_execute(run_id=run.pk)


def production() -> Environment:
    return Environment.objects.select_related("live_release").get(name="production")


# --- Deploy -------------------------------------------------------------------------------


def test_a_deploy_refuses_the_slot_haproxy_routes_although_the_database_calls_it_idle(
    infra: FakeInfrastructure,
) -> None:
    assert deploy("a" * 40).status == "succeeded"  # production: blue live
    infra.proxies["production"].routed = "green"  # someone switched HAProxy by hand

    run = deploy("b" * 40)

    stage = run.stages.get(key="production_deploy")
    assert (run.status, stage.outcome) == ("failed", "failed")
    assert "HAProxy routes green, which the database believes idle" in stage.summary
    assert ("production", "green", "r2") not in infra.starts
    assert infra.proxies["production"].routed == "green"


def test_the_same_deploy_goes_ahead_when_haproxy_agrees_with_the_database(
    infra: FakeInfrastructure,
) -> None:
    """Negative control for the refusal above."""
    deploy("a" * 40)
    assert deploy("b" * 40).status == "succeeded"
    assert ("production", "green", "r2") in infra.starts


# --- Cleanup ------------------------------------------------------------------------------


def test_cleanup_never_stops_a_slot_haproxy_still_routes(
    settings, infra: FakeInfrastructure
) -> None:
    settings.SWEDIFY_PIPELINE_OVERRIDES = FAST_PIPELINE  # cleanup enabled, no window
    deploy("a" * 40)
    proxy = infra.proxies["production"]
    sleep = infra.sleep

    def switched_back_by_hand_while_cleanup_waits(seconds: float) -> None:
        sleep(seconds)
        if proxy.routed == "green":
            proxy.routed = "blue"  # HAProxy back on the old slot; the database not told

    infra.sleep = switched_back_by_hand_while_cleanup_waits
    run = deploy("b" * 40)

    cleanup = run.stages.get(key="cleanup")
    assert (cleanup.outcome, cleanup.action_applied) == ("failed", "skip")
    assert "HAProxy still routes production/blue (production (" in cleanup.summary
    assert ("production", "blue") not in infra.stops
    assert ("production", "blue") in infra.slots


def test_cleanup_stops_the_old_slot_when_haproxy_left_it(
    settings, infra: FakeInfrastructure
) -> None:
    """Negative control: the same run without the hand switch stops the old slot."""
    settings.SWEDIFY_PIPELINE_OVERRIDES = FAST_PIPELINE
    deploy("a" * 40)
    run = deploy("b" * 40)
    assert run.stages.get(key="cleanup").outcome == "succeeded"
    assert ("production", "blue") in infra.stops


# --- Rollback -----------------------------------------------------------------------------


def test_a_rollback_health_checks_the_warm_slot_before_switching_back(
    infra: FakeInfrastructure,
) -> None:
    deploy("a" * 40)
    deploy("b" * 40)
    proxy = infra.proxies["production"]
    checked_before_switch = []
    switch = proxy.switch_to

    def switch_to(slot: str) -> float:
        checked_before_switch.append(
            HealthCheck.objects.filter(source="rollback", slot=slot, ok=True).exists()
        )
        return switch(slot)

    proxy.switch_to = switch_to
    rollback = rollback_start(environment=production(), reason="errors", actor_name="ops")

    assert (rollback.mode, rollback.status) == ("switch_back", "succeeded")
    assert checked_before_switch == [True]


def test_a_warm_slot_that_no_longer_answers_healthy_is_never_switched_back_to(
    infra: FakeInfrastructure,
) -> None:
    deploy("a" * 40)
    deploy("b" * 40)
    infra.unhealthy_versions = {"r1"}  # blue still runs r1, but answers 503
    switches = list(infra.proxies["production"].switches)

    rollback = rollback_start(environment=production(), reason="errors", actor_name="ops")

    assert (rollback.mode, rollback.status) == ("redeploy", "failed")
    warm_check = HealthCheck.objects.filter(source="rollback", slot="blue").order_by("at").first()
    assert (warm_check.ok, warm_check.http_status) == (False, 503)
    assert infra.proxies["production"].switches == switches  # traffic never moved
    assert (production().live_slot, production().live_release.label) == ("green", "r2")


# --- Cutover race -------------------------------------------------------------------------


class RacingProxy(FakeProxy):
    """While HAProxy switches, another cutover (e.g. a rollback) commits its own."""

    def __init__(self, winner: Release, **kwargs) -> None:
        super().__init__(**kwargs)
        self.winner = winner

    def switch_to(self, slot: str) -> float:
        if not self.switches:
            Environment.objects.filter(name="production").update(
                live_slot="blue", live_release=self.winner
            )
        return super().switch_to(slot)


def test_a_cutover_that_loses_the_race_switches_haproxy_back_to_the_winner(
    infra: FakeInfrastructure,
) -> None:
    deploy("a" * 40)  # blue serves r1
    r2 = release_create(git_sha="b" * 40)
    # The winner: r3 put into blue and cut over while this cutover switched HAProxy.
    r3 = release_create(git_sha="c" * 40)
    infra.proxies["production"] = proxy = RacingProxy(winner=r3, routed="blue")
    deployment = deployment_create(release=r2, environment=production(), slot="green")

    with pytest.raises(CutoverConflict, match="traffic stays on blue"):
        environment_cutover(
            environment=production(), deployment=deployment, reason="race", actor_name="t"
        )

    assert proxy.switches == ["green", "blue"]
    assert proxy.routed == "blue"
    assert (production().live_slot, production().live_release) == ("blue", r3)
    deployment.refresh_from_db()
    assert deployment.state == "queued"  # never marked as serving


# --- The admin's rollback redeploy runs in a worker ---------------------------------------


@pytest.fixture
def staff(client: Client, django_user_model) -> Client:
    client.force_login(django_user_model.objects.create_superuser("admin", password=None))
    return client


def test_the_admin_queues_a_rollback_redeploy_instead_of_running_it_in_the_request(
    staff: Client, infra: FakeInfrastructure, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    from deployments import tasks

    deploy("a" * 40)
    deploy("b" * 40)
    infra.slots.pop(("production", "blue"))  # the old slot is gone: a redeploy
    queued = []
    monkeypatch.setattr(tasks.rollback_continue_task, "delay", lambda *a: queued.append(a))
    environment = production()
    starts = len(infra.starts)

    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(
            f"/admin/deployments/environment/{environment.pk}/rollback/",
            {"reason": "errors up"},
            follow=True,
        )

    assert "redeploys r1 in a worker" in response.content.decode()
    assert len(infra.starts) == starts  # nothing started in the request
    assert production().lock_holder.startswith("rollback:")  # the worker's to release
    assert len(queued) == 1

    assert tasks.rollback_continue_task(*queued[0]) == "succeeded"
    assert tasks.rollback_continue_task(*queued[0]) == "not running"  # a redelivery
    assert infra.starts[starts:] == [("production", "blue", "r1")]
    assert (production().live_slot, production().live_release.label) == ("blue", "r1")
    assert production().lock_holder == ""
    assert Deployment.objects.filter(rollback__isnull=False, state="success").count() == 1
