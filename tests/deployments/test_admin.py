from __future__ import annotations

import re

import pytest
from django.test import Client

from deployments.adapters import use_infrastructure
from deployments.models import (
    AuditEvent,
    Environment,
    HealthCheck,
    PipelineRun,
    Release,
    Rollback,
)
from deployments.pipeline import pipeline_run_create, pipeline_run_execute
from deployments.services import release_create
from tests.deployments.fakes import FAST_PIPELINE, FakeInfrastructure, make_environments

pytestmark = pytest.mark.django_db


@pytest.fixture
def infra(settings):
    settings.SWEDIFY_PIPELINE_OVERRIDES = {**FAST_PIPELINE, "cleanup": {"enabled": False}}
    fake = FakeInfrastructure()
    make_environments(fake)
    with use_infrastructure(fake):
        for sha in ("a" * 40, "b" * 40):
            run = pipeline_run_create(release=release_create(git_sha=sha), actor_name="t")
            pipeline_run_execute(run_id=run.pk)
        yield fake


@pytest.fixture
def staff(client: Client, django_user_model) -> Client:
    # No password: hashing one costs a second per test on a small machine.
    client.force_login(django_user_model.objects.create_superuser("admin", password=None))
    return client


def production() -> Environment:
    return Environment.objects.get(name="production")


def test_anonymous_visitors_are_sent_to_the_login(client: Client, infra) -> None:
    for url in (
        "/admin/deployments/environment/",
        f"/admin/deployments/environment/{production().pk}/rollback/",
        f"/admin/deployments/pipelinerun/{PipelineRun.objects.first().pk}/report.md/",
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_a_non_staff_user_cannot_see_the_console(client: Client, django_user_model, infra) -> None:
    client.force_login(django_user_model.objects.create_user("listener"))
    assert client.get("/admin/deployments/healthcheck/").status_code == 302


def test_every_page_renders_for_staff(staff: Client, infra) -> None:
    run = PipelineRun.objects.first()
    for url in (
        "/admin/deployments/environment/",
        f"/admin/deployments/environment/{production().pk}/change/",
        "/admin/deployments/release/",
        "/admin/deployments/pipelinerun/",
        f"/admin/deployments/pipelinerun/{run.pk}/change/",
        "/admin/deployments/deployment/",
        "/admin/deployments/healthcheck/",
        f"/admin/deployments/healthcheck/{HealthCheck.objects.first().pk}/change/",
        "/admin/deployments/rollback/",
        "/admin/deployments/auditevent/",
    ):
        assert staff.get(url).status_code == 200, url


def test_the_run_page_shows_its_stages_inline(staff: Client, infra) -> None:
    run = PipelineRun.objects.first()
    page = staff.get(f"/admin/deployments/pipelinerun/{run.pk}/change/").content.decode()
    for name in ("Quality checks", "Production health", "Traffic cutover", "Cleanup"):
        assert name in page


def test_the_report_downloads_as_markdown(staff: Client, infra) -> None:
    run = PipelineRun.objects.first()
    response = staff.get(f"/admin/deployments/pipelinerun/{run.pk}/report.md/")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="deployment-run-{run.pk}.md"'
    assert b"# Deployment Report" in response.content


def test_the_environment_page_flags_a_proxy_disagreement(staff: Client, infra) -> None:
    url = f"/admin/deployments/environment/{production().pk}/change/"
    page = staff.get(url).content.decode()
    assert "proxy-disagreement" not in page
    assert "blue: drain, green: ready" in page
    infra.proxies["production"].routed = "blue"  # the database says green

    page = staff.get(url).content.decode()
    assert 'id="proxy-disagreement"' in page


def test_an_unreachable_proxy_is_shown_not_a_500(staff: Client, infra) -> None:
    infra.proxies["production"].running = False
    page = staff.get(f"/admin/deployments/environment/{production().pk}/change/")
    assert page.status_code == 200
    assert "proxy unreachable" in page.content.decode()


def test_the_real_proxy_adapter_with_no_haproxy_is_shown_not_a_500(staff: Client, tmp_path) -> None:
    environment = Environment.objects.create(
        name="staging", blue_port=1, green_port=2, admin_socket=str(tmp_path / "none.sock")
    )
    page = staff.get(f"/admin/deployments/environment/{environment.pk}/change/")
    assert page.status_code == 200
    assert "proxy unreachable" in page.content.decode()


def test_a_rollback_needs_a_reason_on_its_confirmation_page(staff: Client, infra) -> None:
    url = f"/admin/deployments/environment/{production().pk}/rollback/"
    page = staff.get(url)
    assert page.status_code == 200
    assert b"r1" in page.content

    refused = staff.post(url, {"reason": "  "})
    assert refused.status_code == 200
    assert b"This field is required" in refused.content
    assert Rollback.objects.count() == 0

    done = staff.post(url, {"reason": "error rate up"})
    assert done.status_code == 302
    rollback = Rollback.objects.get()
    assert (rollback.status, rollback.reason, rollback.actor.username) == (
        "succeeded",
        "error rate up",
        "admin",
    )
    assert production().live_release.label == "r1"


def test_an_unsafe_rollback_needs_the_explicit_confirmation(staff: Client, infra) -> None:
    from deployments.models import Release

    Release.objects.filter(version=2).update(rollback_safe=False, rollback_unsafe_reason="drops x")
    url = f"/admin/deployments/environment/{production().pk}/rollback/"
    assert b"drops x" in staff.get(url).content
    refused = staff.post(url, {"reason": "errors"})
    assert refused.status_code == 200
    assert Rollback.objects.count() == 0
    done = staff.post(url, {"reason": "errors", "confirm_unsafe": "on"})
    assert done.status_code == 302
    assert Rollback.objects.get().confirmed_unsafe


def test_abort_and_override_need_a_reason(staff: Client, infra) -> None:
    infra.failing_commands = {"unit-tests"}
    run = pipeline_run_create(release=release_create(git_sha="c" * 40), actor_name="t")
    pipeline_run_execute(run_id=run.pk)
    base = f"/admin/deployments/pipelinerun/{run.pk}"
    assert b"unit-tests" in staff.get(f"{base}/override/").content

    assert staff.post(f"{base}/abort/", {"reason": ""}).status_code == 200
    run.refresh_from_db()
    assert run.status == "paused"

    assert staff.post(f"{base}/abort/", {"reason": "wrong commit"}).status_code == 302
    run.refresh_from_db()
    assert run.status == "aborted"
    assert AuditEvent.objects.filter(action="run.abort", details__reason="wrong commit").exists()


def test_history_admins_offer_no_add_change_or_delete(staff: Client, infra) -> None:
    check = HealthCheck.objects.first()
    for model in ("healthcheck", "rollback", "auditevent", "pipelinerun", "deployment"):
        assert staff.get(f"/admin/deployments/{model}/add/").status_code == 403, model
    # Releases are added (from a commit: tests/deployments/test_operator_admin_releases.py),
    # never changed or deleted.
    release = Release.objects.first()
    assert staff.get(f"/admin/deployments/release/{release.pk}/delete/").status_code == 403
    assert (
        b'name="_save"' not in staff.get(f"/admin/deployments/release/{release.pk}/change/").content
    )
    assert staff.get(f"/admin/deployments/healthcheck/{check.pk}/delete/").status_code == 403
    page = staff.get(f"/admin/deployments/healthcheck/{check.pk}/change/").content
    assert b'name="_save"' not in page
    changelist = staff.get("/admin/deployments/auditevent/").content
    assert b"delete_selected" not in changelist


def test_the_deploy_action_queues_a_run_once_it_is_committed(
    staff: Client, infra, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    from deployments import tasks

    queued = []
    monkeypatch.setattr(tasks.pipeline_run_task, "delay", queued.append)
    release = release_create(git_sha="c" * 40)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = staff.post(
            "/admin/deployments/release/",
            {"action": "deploy", "_selected_action": [release.pk]},
        )
        # Nothing reaches a worker before the run's row is committed.
        assert queued == []
    assert len(callbacks) == 1
    response = staff.get(response["Location"])
    run = PipelineRun.objects.get(release=release)
    assert queued == [run.pk]
    assert f"Run #{run.pk} of r3 queued." in response.content.decode()
    assert run.status == "queued"
    assert production().lock_holder == run.lock_name


def test_a_retry_from_the_admin_requeues_the_paused_run(
    staff: Client, infra, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    from deployments import tasks

    queued = []
    monkeypatch.setattr(tasks.pipeline_run_task, "delay", queued.append)
    infra.failing_commands = {"unit-tests"}
    run = pipeline_run_create(release=release_create(git_sha="c" * 40), actor_name="t", queue=False)
    pipeline_run_execute(run_id=run.pk)

    assert staff.get(f"/admin/deployments/pipelinerun/{run.pk}/retry/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(f"/admin/deployments/pipelinerun/{run.pk}/retry/")
    assert response.status_code == 302
    run.refresh_from_db()
    assert (run.status, queued) == ("queued", [run.pk])


def test_a_broker_outage_leaves_the_run_queued_with_a_warning_the_operator_sees(
    staff: Client, infra, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    from deployments import tasks

    def broker_down(run_id: int) -> None:
        raise ConnectionRefusedError("broker")

    monkeypatch.setattr(tasks.pipeline_run_task, "delay", broker_down)
    release = release_create(git_sha="c" * 40)
    with django_capture_on_commit_callbacks(execute=True):
        staff.post(
            "/admin/deployments/release/", {"action": "deploy", "_selected_action": [release.pk]}
        )
    run = PipelineRun.objects.get(release=release)
    assert run.status == "queued"
    assert "could not be queued (ConnectionRefusedError)" in run.warnings[0]
    page = staff.get(f"/admin/deployments/pipelinerun/{run.pk}/change/").content.decode()
    assert f"manage.py deploy --resume {run.pk}" in page


def test_the_runbook_names_admin_pages_that_exist(staff: Client, infra) -> None:
    import re
    from pathlib import Path

    from django.conf import settings

    runbook = (Path(settings.BASE_DIR) / "docs" / "runbooks.md").read_text()
    urls = set(re.findall(r"`(/admin/[^`\s]+)`", runbook))
    assert "/admin/genres/spotifycallbucket/" in urls
    for url in urls:
        assert staff.get(url).status_code == 200, url


# Counts, the date range and the date hierarchy's distinct months: a few rows whatever the table.
AGGREGATE = re.compile(r"\b(COUNT|MIN|MAX)\(|^SELECT DISTINCT ")


def test_the_health_history_stays_fast_on_100k_rows(staff: Client, infra) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.deployments.test_uptime import insert_probes

    insert_probes(production(), count=100_000, every_seconds=25, failing_every=1000)
    pages = []
    for url in (
        "/admin/deployments/healthcheck/?ok__exact=0",
        "/admin/deployments/healthcheck/",
        "/admin/deployments/healthcheck/?within=1h",
    ):
        with CaptureQueriesContext(connection) as queries:
            pages.append(staff.get(url))
        # Fast whatever the machine's load: a few queries a page (no query per row), and
        # every query that reads probes is an aggregate (counts, dates) or one page
        # of rows, never the table.
        assert len(queries) <= 8, [q["sql"] for q in queries]
        for query in queries:
            sql = query["sql"].upper()
            if "DEPLOYMENTS_HEALTHCHECK" in sql and not AGGREGATE.search(sql):
                assert "LIMIT" in sql, query["sql"]
    response, page, last_hour = pages
    # One probe every 25 s (143 or 144, by the clock), plus the fixture's 4 pipeline probes.
    assert re.search(rb"\b14[78] health checks", last_hour.content)
    assert response.status_code == 200
    assert page.status_code == 200
    assert b"100 health checks" in response.content  # 1 in 1000 probes failed
