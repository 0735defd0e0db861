"""The pipeline task through a real Celery worker and the configured broker (not eager mode):
the worker runs in a thread of this process so it shares the test database and the fakes."""

from __future__ import annotations

import time

import pytest

from deployments.adapters import use_infrastructure
from deployments.models import PipelineRun
from deployments.pipeline import pipeline_run_create
from deployments.services import release_create
from tests.deployments.fakes import FAST_PIPELINE, FakeInfrastructure, make_environments

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def wait_for_status(run: PipelineRun, statuses: set[str], timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status in statuses:
            return run.status
        time.sleep(0.05)
    return run.status


def test_a_queued_run_is_executed_by_a_worker_exactly_once(settings) -> None:
    from celery.contrib.testing.worker import start_worker

    from swedify.celery import app

    settings.SWEDIFY_PIPELINE_OVERRIDES = FAST_PIPELINE
    # The worker's start-up guard refuses the development key with DEBUG off.
    settings.SECRET_KEY = "worker-test-secret-key-that-is-not-the-development-one"
    fake = FakeInfrastructure()
    make_environments(fake)
    with use_infrastructure(fake):
        run = pipeline_run_create(release=release_create(git_sha="a" * 40), actor_name="t")
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            from deployments.tasks import pipeline_run_task

            # Delivered twice (as a redelivery after a lost ack would be): claimed once.
            pipeline_run_task.delay(run.pk)
            pipeline_run_task.delay(run.pk)
            assert wait_for_status(run, {"succeeded", "failed", "paused"}) == "succeeded"
            time.sleep(0.3)

    assert fake.commands.count("lint-check") == 1
    assert fake.proxies["production"].switches == ["blue"]
