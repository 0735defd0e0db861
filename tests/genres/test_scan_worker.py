"""A real Celery worker (in this process, on an in-memory broker) runs a scan started over
HTTP: the task is published on commit, consumed, acknowledged late and run to the end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker

from genres.models import Scan
from swedify.celery import app as swedify_app
from tests.genres.conftest import sign_in
from tests.genres.test_scan_sandbox import assert_matches_truth, start_scan

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]


@pytest.fixture
def worker_app(settings: Any) -> Iterator[Celery]:
    """A Celery app like Swedify's, on an in-memory broker, made current for the test."""
    # A worker refuses to start with the development key (swedify.preflight).
    settings.SECRET_KEY = "test-only-secret-for-the-embedded-worker-" + "x" * 20
    app = Celery("swedify-test-worker", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.update(broker_url="memory://", broker_transport_options={}, task_always_eager=False)
    app.set_current()
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            yield app
    finally:
        # start_worker made the test app the process default too: threads without a current
        # app of their own (a live server's) would publish to its in-memory broker.
        swedify_app.set_current()
        swedify_app.set_default()


def wait_for(scan_id: str, timeout: float = 30) -> Scan:
    deadline = time.monotonic() + timeout
    while True:
        scan = Scan.objects.get(pk=scan_id)
        if scan.status not in Scan.ACTIVE or time.monotonic() > deadline:
            return scan
        time.sleep(0.05)


def test_a_scan_started_over_http_is_run_by_a_worker(
    client: Any, spotify_at_sandbox: Any, worker_app: Celery
):
    sign_in(client, spotify_at_sandbox, "small")

    answer = start_scan(client)

    assert answer.status_code == 202
    scan = wait_for(answer.json()["id"])
    assert scan.status == Scan.Status.SUCCEEDED
    assert scan.attempts == 1
    assert_matches_truth(client.get("/api/genres").json(), spotify_at_sandbox.truth("small"))
