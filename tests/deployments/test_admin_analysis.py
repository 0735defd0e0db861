"""The operators' side of the analysis window: a banner for an automatic rollback, and
"Promote now" / "Roll back now" on a run (and its environment) while the window is open."""

from __future__ import annotations

import pytest
from django.test import Client

from deployments.models import AuditEvent, Environment, PipelineRun, Rollback, StageRun
from deployments.pipeline import pipeline_run_create, pipeline_run_execute
from deployments.services import release_create
from tests.deployments.fakes import FAST_PIPELINE, FakeInfrastructure

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client, django_user_model) -> Client:
    client.force_login(django_user_model.objects.create_superuser("admin", password=None))
    return client


def deploy(sha: str) -> PipelineRun:
    run = pipeline_run_create(release=release_create(git_sha=sha), actor_name="t", queue=False)
    return pipeline_run_execute(run_id=run.pk)


def deploy_r2_after_r1(infra: FakeInfrastructure, settings, *, errors: int) -> PipelineRun:
    deploy("a" * 40)
    settings.SWEDIFY_PIPELINE_OVERRIDES = {
        **FAST_PIPELINE,
        "analysis": {"params": {"window_seconds": 30, "interval_seconds": 5}},
    }
    proxy = infra.proxies["production"]
    infra.on_sleep.append(lambda _: proxy.serve(ok=20 - errors, errors=errors))
    return deploy("b" * 40)


def test_an_automatic_rollback_is_announced_on_the_environments_and_its_run(
    staff: Client, infra: FakeInfrastructure, settings
) -> None:
    run = deploy_r2_after_r1(infra, settings, errors=10)
    rollback = Rollback.objects.get(trigger="automatic")
    at = rollback.started_at.strftime("%H:%M")
    banner = f"Automatic rollback of r2 at {at} UTC: 5xx 50 % &gt; 5 % over 5 s"

    production = Environment.objects.get(name="production")
    for url in (
        "/admin/deployments/environment/",
        f"/admin/deployments/environment/{production.pk}/change/",
        f"/admin/deployments/pipelinerun/{run.pk}/change/",
    ):
        page = staff.get(url).content.decode()
        assert banner in page, url


def test_no_banner_without_an_automatic_rollback(
    staff: Client, infra: FakeInfrastructure, settings
) -> None:
    run = deploy_r2_after_r1(infra, settings, errors=0)
    assert run.status == "succeeded"
    for url in (
        "/admin/deployments/environment/",
        f"/admin/deployments/pipelinerun/{run.pk}/change/",
    ):
        assert "Automatic rollback" not in staff.get(url).content.decode(), url


def analysing(run: PipelineRun) -> PipelineRun:
    """``run`` as a worker leaves it while the analysis window is open."""
    PipelineRun.objects.filter(pk=run.pk).update(
        status="running", context={"cutover": {"environment": "production"}}
    )
    StageRun.objects.filter(run=run, key="analysis").update(outcome="running")
    return PipelineRun.objects.get(pk=run.pk)


def test_an_operator_promotes_a_run_in_its_analysis_window(
    staff: Client, infra: FakeInfrastructure
) -> None:
    run = analysing(pipeline_run_create(release=release_create(git_sha="c" * 40), queue=False))
    page = staff.get(f"/admin/deployments/pipelinerun/{run.pk}/change/").content.decode()
    assert "Promote now…" in page
    assert "Roll back now…" in page
    production = Environment.objects.get(name="production")
    environment_page = staff.get(f"/admin/deployments/environment/{production.pk}/change/")
    assert f"/admin/deployments/pipelinerun/{run.pk}/promote/" in environment_page.content.decode()

    confirm = staff.get(f"/admin/deployments/pipelinerun/{run.pk}/promote/")
    assert confirm.status_code == 200
    assert "Promote now" in confirm.content.decode()
    done = staff.post(f"/admin/deployments/pipelinerun/{run.pk}/promote/", {"reason": "looks fine"})

    assert done.status_code == 302
    run.refresh_from_db()
    assert run.context["promoted"]["by"] == "admin"
    event = AuditEvent.objects.get(action="run.promote")
    assert (event.actor_name, event.details) == ("admin", {"reason": "looks fine"})


def test_roll_back_now_is_the_environments_rollback_and_promote_is_refused_outside_the_window(
    staff: Client, infra: FakeInfrastructure
) -> None:
    run = analysing(pipeline_run_create(release=release_create(git_sha="d" * 40), queue=False))
    production = Environment.objects.get(name="production")
    answer = staff.get(f"/admin/deployments/pipelinerun/{run.pk}/rollback/")
    assert answer["Location"] == f"/admin/deployments/environment/{production.pk}/rollback/"

    StageRun.objects.filter(run=run, key="analysis").update(outcome="succeeded")
    page = staff.get(f"/admin/deployments/pipelinerun/{run.pk}/change/").content.decode()
    assert "Promote now…" not in page
    staff.post(f"/admin/deployments/pipelinerun/{run.pk}/promote/", {"reason": "late"})
    assert not AuditEvent.objects.filter(action="run.promote").exists()
    messages = staff.get(f"/admin/deployments/pipelinerun/{run.pk}/change/").content.decode()
    assert "is not in its analysis window" in messages
