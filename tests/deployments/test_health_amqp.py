"""The detailed health's broker probe against a real RabbitMQ (CI starts one; see `.ci/run`).

Outside CI, a machine without RabbitMQ skips these tests; under CI=true a skip fails the run
(tests/run_guards.py), so CI always drives the AMQP probe.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest
from django.test import Client

from deployments import probes
from tests.run_guards import ci_enabled

pytestmark = [pytest.mark.django_db, pytest.mark.integration]

AMQP_URL = os.environ.get("SWEDIFY_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def listening(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 5672), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def rabbitmq(settings, monkeypatch: pytest.MonkeyPatch, tmp_path) -> str:
    if not listening(AMQP_URL):
        if ci_enabled():
            pytest.fail(f"CI starts RabbitMQ, but nothing listens at {urlsplit(AMQP_URL).netloc}")
        pytest.skip(f"no RabbitMQ at {urlsplit(AMQP_URL).hostname} (CI runs this test)")
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.CELERY_BROKER_URL = AMQP_URL
    # What is under test is that the probe speaks AMQP to a real broker, not how fast an AMQP
    # handshake is on a loaded machine: budgets far above it (the 1 s promise is tested with
    # blackholed ports in test_health_detailed.py).
    monkeypatch.setitem(probes.PROBE_TIMEOUTS, "broker", 10.0)
    return AMQP_URL


def broker_component(client: Client) -> dict:
    response = client.get("/health?detailed=true")
    assert response.status_code == 200
    return response.json()["components"]["broker"]


def test_a_reachable_rabbitmq_broker_answers_ok(client: Client, rabbitmq: str) -> None:
    assert broker_component(client)["status"] == "ok"


def test_a_rabbitmq_refusing_the_login_is_an_error(client: Client, rabbitmq: str, settings) -> None:
    parts = urlsplit(rabbitmq)
    settings.CELERY_BROKER_URL = parts._replace(
        netloc=f"guest:not-the-password@{parts.hostname}:{parts.port or 5672}"
    ).geturl()

    broker = broker_component(client)

    assert broker["status"] == "error"
    assert broker["error"].startswith("cannot connect to the broker")
