"""In a real browser (Debian's Chromium), a paused run's admin page follows the run by itself:
when the operator's retry lets the run finish, the page shows it succeeded without a reload,
then stops updating, and the admin's strict Content-Security-Policy reports nothing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from playwright.sync_api import expect

from deployments import admin_runs
from deployments.adapters import use_infrastructure
from deployments.models import PipelineRun
from deployments.pipeline import pipeline_run_create, pipeline_run_execute, pipeline_run_retry
from deployments.services import release_create
from tests.deployments.fakes import FAST_PIPELINE, FakeInfrastructure, make_environments

pytestmark = pytest.mark.browser

# Playwright's sync API runs an event loop in this thread; the test still writes rows (it
# plays the worker) and the database is flushed after it, which Django otherwise refuses
# there (tests/browser/conftest.py does the same).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium", pytrace=False)
    return {"executable_path": str(CHROMIUM), "args": ["--no-sandbox", "--disable-gpu"]}


@pytest.fixture
def fake(settings, transactional_db: Any) -> Iterator[FakeInfrastructure]:
    settings.SWEDIFY_PIPELINE_OVERRIDES = FAST_PIPELINE
    infrastructure = FakeInfrastructure()
    make_environments(infrastructure)
    with use_infrastructure(infrastructure):
        yield infrastructure


def test_a_paused_run_page_shows_the_run_finish_without_a_reload(
    live_server: Any,
    fake: FakeInfrastructure,
    django_user_model: Any,
    page: Any,
    context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The page asks for itself every 0.3 s here (3 s in production).
    monkeypatch.setattr(admin_runs, "LIVE_REFRESH_SECONDS", 0.3)
    fake.failing_commands = {"unit-tests"}
    run = pipeline_run_create(release=release_create(git_sha="a" * 40), actor_name="t")
    run = pipeline_run_execute(run_id=run.pk)
    assert run.status == PipelineRun.Status.PAUSED
    operator = django_user_model.objects.create_superuser("ops", password=None)
    client = Client()
    client.force_login(operator)
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    errors: list[str] = []
    # CSP violations, script errors and failed requests of the page (the browser's own
    # favicon request is no request of the page and never shows as a response).
    page.on(
        "console",
        lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(10_000)

    page.goto(f"{live_server.url}/admin/deployments/pipelinerun/{run.pk}/change/")
    expect(page.locator("#run-live")).to_be_visible()
    expect(page.locator(".field-status_badge")).to_contain_text("paused")
    page.evaluate("window.sameDocument = true")

    # The operator fixed the test and retried; the worker runs the rest.
    fake.failing_commands = set()
    pipeline_run_retry(run=run, actor_name="ops")
    pipeline_run_execute(run_id=run.pk)

    expect(page.locator(".field-status_badge")).to_contain_text("succeeded")
    expect(page.locator("#run-final")).to_be_visible()
    expect(page.locator("#run-live")).to_have_count(0)
    assert page.evaluate("window.sameDocument") is True  # updated in place, never reloaded
    assert "paused" in page.locator(".field-took").inner_text()
    assert errors == []
