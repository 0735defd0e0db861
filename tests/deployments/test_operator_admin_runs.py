"""A run's admin page updates itself while the run is active (a same-origin script, no
inline code), its durations leave out the time it sat paused for an operator, and times
carry their time zone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.utils import timezone

from deployments.admin_common import seconds_text, when
from deployments.models import PipelineRun
from deployments.pipeline import pipeline_run_create, pipeline_run_execute, pipeline_run_retry
from deployments.reports import run_over_budget
from deployments.services import release_create
from tests.deployments.fakes import FakeInfrastructure

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client, django_user_model) -> Client:
    client.force_login(django_user_model.objects.create_superuser("admin", password=None))
    return client


def paused_run(infra: FakeInfrastructure) -> PipelineRun:
    infra.failing_commands = {"unit-tests"}
    run = pipeline_run_create(release=release_create(git_sha="a" * 40), actor_name="t")
    run = pipeline_run_execute(run_id=run.pk)
    assert run.status == PipelineRun.Status.PAUSED
    infra.failing_commands = set()
    return run


def sit_paused_for(run: PipelineRun, minutes: int) -> None:
    """The operator comes back ``minutes`` later: the pause started that long ago."""
    run.refresh_from_db()
    started = timezone.now() - timedelta(minutes=minutes)
    run.context = {**run.context, "paused_at": started.isoformat()}
    PipelineRun.objects.filter(pk=run.pk).update(
        context=run.context, started_at=started - timedelta(seconds=20)
    )


def test_an_active_runs_page_loads_the_live_script_from_static_files(
    staff: Client, infra: FakeInfrastructure
) -> None:
    run = paused_run(infra)

    response = staff.get(f"/admin/deployments/pipelinerun/{run.pk}/change/")

    page = response.content.decode()
    assert '<script src="/static/deployments/run_live.js" defer></script>' in page
    assert 'id="run-live" data-refresh-ms="3000"' in page
    assert finders.find("deployments/run_live.js") is not None
    # The admin's policy forbids inline script: every script of the page is a file.
    assert "<script>" not in page
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_a_finished_runs_page_stays_still(staff: Client, infra: FakeInfrastructure) -> None:
    run = pipeline_run_create(release=release_create(git_sha="a" * 40), actor_name="t")
    run = pipeline_run_execute(run_id=run.pk)
    assert run.status == PipelineRun.Status.SUCCEEDED

    page = staff.get(f"/admin/deployments/pipelinerun/{run.pk}/change/").content.decode()

    assert "run_live.js" not in page
    assert 'id="run-final"' in page


def test_a_pause_is_left_out_of_the_duration_and_shown_beside_it(
    staff: Client, infra: FakeInfrastructure
) -> None:
    run = paused_run(infra)
    sit_paused_for(run, minutes=30)

    pipeline_run_retry(run=run, actor_name="ops")
    run = pipeline_run_execute(run_id=run.pk)

    assert run.status == PipelineRun.Status.SUCCEEDED
    assert 30 * 60 - 5 < run.paused_seconds < 30 * 60 + 5
    # Twenty seconds of work before the pause, a moment after it.
    assert 19 < run.active_seconds < 60
    # A run that waited for its operator is not over the five-minute deploy budget.
    assert not run_over_budget(run)
    page = staff.get(f"/admin/deployments/pipelinerun/{run.pk}/change/").content.decode()
    assert "paused, 30 min" in page
    assert "(+ 30 min 0" in page
    assert "over 5 min" not in page
    report = staff.get(f"/admin/deployments/pipelinerun/{run.pk}/report.md/").content.decode()
    assert "paused for an operator" in report
    assert "FLAG" not in report


def test_a_run_still_paused_counts_its_pause_until_now(
    staff: Client, infra: FakeInfrastructure
) -> None:
    run = paused_run(infra)
    sit_paused_for(run, minutes=12)
    run.refresh_from_db()

    assert 12 * 60 - 5 < run.paused_seconds < 12 * 60 + 5
    assert run.active_seconds < 60
    page = staff.get("/admin/deployments/pipelinerun/").content.decode()
    assert "so far (+ 12 min" in page


def test_an_aborted_pause_is_counted_too(infra: FakeInfrastructure) -> None:
    from deployments.pipeline import pipeline_run_abort

    run = paused_run(infra)
    sit_paused_for(run, minutes=5)

    run = pipeline_run_abort(run=run, reason="wrong commit", actor_name="ops")

    assert run.status == PipelineRun.Status.ABORTED
    assert 5 * 60 - 5 < run.paused_seconds < 5 * 60 + 5
    assert "paused_at" not in run.context


def test_times_are_shown_with_their_time_zone(staff: Client, infra: FakeInfrastructure) -> None:
    run = pipeline_run_execute(
        run_id=pipeline_run_create(release=release_create(git_sha="a" * 40), actor_name="t").pk
    )
    run.refresh_from_db()
    stamp = when(run.started_at)
    assert stamp.endswith(" UTC")

    for url in (
        f"/admin/deployments/pipelinerun/{run.pk}/change/",
        "/admin/deployments/pipelinerun/",
        "/admin/deployments/release/",
        "/admin/deployments/healthcheck/",
        "/admin/deployments/auditevent/",
    ):
        page = staff.get(url).content.decode()
        assert " UTC" in page, url
    assert stamp in staff.get(f"/admin/deployments/pipelinerun/{run.pk}/change/").content.decode()


def test_durations_read_in_the_unit_that_fits() -> None:
    assert [seconds_text(s) for s in (None, 4.25, 192, 3725)] == [
        "—",
        "4.2 s",
        "3 min 12 s",
        "1 h 02 min",
    ]
