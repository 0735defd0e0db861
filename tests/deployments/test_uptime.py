from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deployments.adapters import use_infrastructure
from deployments.models import HealthCheck
from deployments.selectors import environment_uptime, latest_failures
from deployments.services import environment_configure
from deployments.tasks import environments_probe
from tests.deployments.fakes import FakeInfrastructure, make_environments

pytestmark = pytest.mark.django_db


def rows(environment, *, count: int, failing_every: int, span: timedelta, now) -> list:
    step = span / count
    return [
        HealthCheck(
            environment=environment,
            source=HealthCheck.Source.PERIODIC,
            url="http://127.0.0.1:1/health?detailed=true",
            ok=(i % failing_every != 0) if failing_every else True,
            latency_ms=5.0,
            at=now - step * i - timedelta(seconds=1),
        )
        for i in range(count)
    ]


def test_uptime_counts_periodic_probes_per_window() -> None:
    production = environment_configure(name="production", blue_port=1, green_port=2)
    now = timezone.now()
    # The last 24 h: 1,000 probes, 2 failing → 99.8 % (below target).
    HealthCheck.objects.bulk_create(
        rows(production, count=1000, failing_every=500, span=timedelta(hours=23), now=now)
    )
    # Days 2-7: 4,000 probes, none failing.
    HealthCheck.objects.bulk_create(
        rows(
            production,
            count=4000,
            failing_every=0,
            span=timedelta(days=5),
            now=now - timedelta(days=1),
        )
    )
    # A pipeline probe is not a sample of uptime.
    HealthCheck.objects.create(
        environment=production, source="pipeline", url="x", ok=False, latency_ms=1, at=now
    )

    day, week, month = environment_uptime(environment=production, now=now)

    assert (day.label, day.total, day.ok, day.percent, day.meets_target) == (
        "24 h",
        1000,
        998,
        99.8,
        False,
    )
    assert (week.total, week.ok, week.percent, week.meets_target) == (5000, 4998, 99.96, True)
    assert month.total == 5000
    assert latest_failures(environment=production)[0].source == "pipeline"


def test_no_probes_means_no_number_rather_than_a_made_up_one() -> None:
    staging = environment_configure(name="staging", blue_port=1, green_port=2)
    day = environment_uptime(environment=staging)[0]
    assert (day.total, day.percent, day.meets_target) == (0, None, None)


def insert_probes(environment, *, count: int, every_seconds: int, failing_every: int) -> None:
    """Generates rows inside the database: building 100k model objects would take seconds."""
    # Constant column list and parameters only: nothing here comes from outside the test.
    columns = (
        "environment_id, slot, source, url, ok, http_status, status, version, latency_ms,"
        " components, error, at"
    )
    if connection.vendor == "postgresql":
        sql = (
            f"INSERT INTO deployments_healthcheck ({columns}) SELECT %s, '', 'periodic', 'u',"  # noqa: S608
            " (i %% %s <> 0), 200, 'ok', '', 5.0, '{}'::jsonb, '',"
            " now() - make_interval(secs => i * %s) FROM generate_series(1, %s) AS i"
        )
    else:
        sql = (
            "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < %s) "  # noqa: S608
            f"INSERT INTO deployments_healthcheck ({columns}) SELECT %s, '', 'periodic', 'u',"
            " (i %% %s <> 0), 200, 'ok', '', 5.0, '{}', '',"
            " strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', '-' || (i * %s) || ' seconds') FROM seq"
        )
    params = (
        [environment.pk, failing_every, every_seconds, count]
        if connection.vendor == "postgresql"
        else [count, environment.pk, failing_every, every_seconds]
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_uptime_stays_fast_on_100k_rows() -> None:
    production = environment_configure(name="production", blue_port=1, green_port=2)
    staging = environment_configure(name="staging", blue_port=3, green_port=4)
    # 100k rows per environment, one every 25 s (about 29 days), 1 in 1000 failing.
    for environment in (production, staging):
        insert_probes(environment, count=100_000, every_seconds=25, failing_every=1000)
    with CaptureQueriesContext(connection) as queries:
        windows = environment_uptime(environment=production)
    # Fast whatever the machine's load: one aggregate query per window (served by the
    # (environment, -at) index), never the rows themselves.
    assert len(queries) == len(windows)
    assert all("COUNT(" in query["sql"].upper() for query in queries)
    assert (windows[-1].total, windows[-1].ok) == (100_000, 99_900)
    # Probes 1…3455 lie within 24 h; probe 3456 is exactly 24 h old by now.
    assert (windows[0].total, windows[0].ok) == (3455, 3452)


def test_the_periodic_probe_records_each_serving_environment(settings) -> None:
    fake = FakeInfrastructure()
    _staging, production = make_environments(fake)
    production.live_slot = "blue"
    production.save(update_fields=["live_slot"])

    with use_infrastructure(fake):
        assert environments_probe() == 1

    check = HealthCheck.objects.get()
    # Through the proxy's port (what users reach); nothing listens there in the fake.
    assert check.url == "http://127.0.0.1:19000/health?detailed=true"
    assert (check.environment, check.source, check.ok) == (production, "periodic", False)
    assert check.error == "Connection refused"
