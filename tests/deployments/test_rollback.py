from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from deployments.adapters import use_infrastructure
from deployments.models import Deployment, Environment, Release, Rollback
from deployments.pipeline import pipeline_run_create, pipeline_run_execute
from deployments.rollbacks import rollback_start
from deployments.services import ROLLBACK_BUDGET, RollbackRefused, release_create
from tests.deployments.fakes import FAST_PIPELINE, FakeInfrastructure, make_environments

pytestmark = pytest.mark.django_db


@pytest.fixture
def infra(settings):
    settings.SWEDIFY_PIPELINE_OVERRIDES = {
        **FAST_PIPELINE,
        # Keep the old slot warm: the rollback window has not passed yet.
        "cleanup": {"enabled": False},
    }
    settings.SWEDIFY_ROLLBACK_HEALTH_DELAY_SECONDS = 0.01
    fake = FakeInfrastructure()
    make_environments(fake)
    with use_infrastructure(fake):
        yield fake


def deploy(sha: str, **release_options) -> Release:
    release = release_create(git_sha=sha, **release_options)
    run = pipeline_run_create(release=release, actor_name="test")
    assert pipeline_run_execute(run_id=run.pk).status == "succeeded"
    return release


def production() -> Environment:
    return Environment.objects.select_related("live_release").get(name="production")


def test_it_switches_back_to_the_warm_old_slot(infra: FakeInfrastructure) -> None:
    deploy("a" * 40)
    deploy("b" * 40)
    starts = len(infra.starts)

    rollback = rollback_start(environment=production(), reason="errors up", actor_name="ops")

    assert (rollback.mode, rollback.status, rollback.trigger) == (
        "switch_back",
        "succeeded",
        "manual",
    )
    assert rollback.duration_seconds < 5
    assert rollback.duration_seconds < ROLLBACK_BUDGET.total_seconds()
    assert len(infra.starts) == starts  # nothing was started: the old slot was warm
    assert infra.proxies["production"].switches[-1] == "blue"
    assert (production().live_slot, production().live_release.label) == ("blue", "r1")
    # Always new rows: a new deployment of the old release; the replaced one goes inactive.
    newest = Deployment.objects.filter(environment__name="production").first()
    assert (newest.release.label, newest.rollback, newest.state) == ("r1", rollback, "success")
    assert Deployment.objects.filter(environment__name="production").count() == 3
    assert list(
        Deployment.objects.filter(environment__name="production", state="success").values_list(
            "release__version", flat=True
        )
    ) == [1]
    assert production().lock_holder == ""


def test_it_redeploys_the_previous_release_when_the_old_slot_is_gone(
    infra: FakeInfrastructure,
) -> None:
    deploy("a" * 40)
    deploy("b" * 40)
    infra.slots.pop(("production", "blue"))

    rollback = rollback_start(environment=production(), reason="errors up", actor_name="ops")

    assert (rollback.mode, rollback.status) == ("redeploy", "succeeded")
    assert infra.starts[-1] == ("production", "blue", "r1")
    assert production().live_release.label == "r1"


def test_a_redeploy_that_never_turns_healthy_fails_and_keeps_traffic(
    settings, infra: FakeInfrastructure
) -> None:
    settings.SWEDIFY_ROLLBACK_HEALTH_ATTEMPTS = 2
    deploy("a" * 40)
    deploy("b" * 40)
    infra.slots.pop(("production", "blue"))
    infra.unhealthy_versions = {"r1"}

    rollback = rollback_start(environment=production(), reason="errors up", actor_name="ops")

    assert rollback.status == "failed"
    assert "did not become healthy" in rollback.error
    assert production().live_release.label == "r2"
    assert infra.proxies["production"].routed == "green"
    assert production().lock_holder == ""


def test_it_refuses_a_release_that_is_not_rollback_safe_unless_confirmed(
    infra: FakeInfrastructure,
) -> None:
    deploy("a" * 40)
    deploy("b" * 40, rollback_safe=False, rollback_unsafe_reason="drops genres.old_column")

    with pytest.raises(RollbackRefused, match=r"r2: drops genres\.old_column"):
        rollback_start(environment=production(), reason="errors", actor_name="ops")
    assert Rollback.objects.count() == 0
    assert production().live_release.label == "r2"

    rollback = rollback_start(
        environment=production(), reason="errors", actor_name="ops", confirm_unsafe=True
    )
    assert (rollback.status, rollback.confirmed_unsafe) == ("succeeded", True)


def test_it_needs_a_reason_and_something_to_go_back_to(infra: FakeInfrastructure) -> None:
    with pytest.raises(RollbackRefused, match="nothing is live"):
        rollback_start(environment=production(), reason="x", actor_name="ops")
    deploy("a" * 40)
    with pytest.raises(RollbackRefused, match="no earlier release"):
        rollback_start(environment=production(), reason="x", actor_name="ops")
    with pytest.raises(RollbackRefused, match="needs a reason"):
        rollback_start(environment=production(), reason=" ", actor_name="ops")


def test_the_rollback_command_switches_back(infra: FakeInfrastructure, capsys) -> None:
    deploy("a" * 40)
    deploy("b" * 40)

    call_command("rollback", "--reason", "errors up")

    assert "r2 → r1 (switch_back): succeeded" in capsys.readouterr().out
    with pytest.raises(CommandError, match="already live"):
        call_command("rollback", "--reason", "again", "--to", "r1")


def test_the_deploy_command_runs_the_pipeline(infra: FakeInfrastructure, capsys, settings) -> None:
    # A real secret: the deploy's own check of the slots' environment passes first.
    settings.SECRET_KEY = "a-real-secret-for-the-release-slots"
    release_create(git_sha="a" * 40)
    call_command("deploy", "r1")
    out = capsys.readouterr().out
    assert "| Traffic cutover | success |" in out
    with pytest.raises(CommandError, match="no release r9"):
        call_command("deploy", "r9")
