"""What keeps a test run apart from others beside it, and honest under CI.

- Apart: `make test` gives each run a data folder of its own (the SQLite test database, the
  filesystem broker, HAProxy's and the slots' state live there) and a run id in
  ``SWEDIFY_TEST_RUN``; the fixture below adds that id to the name of a PostgreSQL test
  database, so two runs against one server do not create, use and drop the same one.
- Honest: with ``CI=true`` a run fails when anything was skipped, xfailed, xpassed or
  deselected (a CI that skips what it cannot run passes on less than the whole suite), and
  ``tests/test_ci_guards.py`` fails unless the database is PostgreSQL and the cache Redis.

The hooks and the fixture are imported into ``tests/conftest.py``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import pytest

__all__ = [
    "django_db_modify_db_settings_parallel_suffix",
    "pytest_collectreport",
    "pytest_deselected",
    "pytest_runtest_logreport",
    "pytest_sessionfinish",
    "pytest_sessionstart",
    "pytest_terminal_summary",
]

RUN_ID_VARIABLE = "SWEDIFY_TEST_RUN"
# PostgreSQL truncates identifiers at 63 bytes; the run id is kept well below that.
RUN_ID_MAX_LENGTH = 24
SQLITE = "django.db.backends.sqlite3"
POSTGRESQL_ENGINES = ("django.db.backends.postgresql",)
REDIS_BACKENDS = ("django_redis.cache.RedisCache", "django.core.cache.backends.redis.RedisCache")


def ci_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """CI=true, as GitHub Actions, GitLab and `.ci/run` set it."""
    return environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def run_id(environ: Mapping[str, str] = os.environ) -> str:
    """The run id `make test` hands down, reduced to what a database name may hold; "" when
    pytest was started some other way."""
    raw = environ.get(RUN_ID_VARIABLE, "")
    return re.sub(r"[^a-z0-9_]", "_", raw.lower())[:RUN_ID_MAX_LENGTH].strip("_")


def run_database_names(databases: Mapping[str, Mapping[str, Any]], suffix: str) -> dict[str, str]:
    """alias -> the test database name of that alias with ``suffix`` for each server database
    (SQLite's test file is already in the run's own data folder)."""
    names: dict[str, str] = {}
    if not suffix:
        return names
    for alias, database in databases.items():
        if database["ENGINE"] == SQLITE:
            continue
        base = (database.get("TEST") or {}).get("NAME") or f"test_{database['NAME']}"
        names[alias] = f"{base}_{suffix}"
    return names


def ci_environment_problems(
    *,
    environ: Mapping[str, str],
    databases: Mapping[str, Mapping[str, Any]],
    caches: Mapping[str, Mapping[str, Any]],
) -> list[str]:
    """Why this run is not what CI promises (PostgreSQL and Redis); empty outside CI."""
    if not ci_enabled(environ):
        return []
    problems = []
    engine = databases["default"]["ENGINE"]
    if engine not in POSTGRESQL_ENGINES:
        problems.append(f"CI runs on PostgreSQL, but the database engine is {engine}")
    backend = caches["default"]["BACKEND"]
    if backend not in REDIS_BACKENDS:
        problems.append(f"CI runs on Redis, but the cache backend is {backend}")
    return problems


@pytest.fixture(scope="session")
def django_db_modify_db_settings_parallel_suffix(
    django_db_modify_db_settings_tox_suffix: None,
    django_db_modify_db_settings_xdist_suffix: None,
) -> None:
    """pytest-django's own suffixes (tox, xdist), then this run's id on server databases."""
    from django.conf import settings

    for alias, name in run_database_names(settings.DATABASES, run_id()).items():
        settings.DATABASES[alias].setdefault("TEST", {})["NAME"] = name


# --- Under CI=true: nothing skipped, xfailed or deselected ----------------------------------

_not_run: list[str] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    _not_run.clear()


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:
        _not_run.append(f"skipped at collection: {report.nodeid} ({_reason(report)})")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        kind = "xfailed" if hasattr(report, "wasxfail") else "skipped"
        _not_run.append(f"{kind}: {report.nodeid} ({_reason(report)})")
    elif report.when == "call" and report.passed and hasattr(report, "wasxfail"):
        _not_run.append(f"xpassed: {report.nodeid} ({report.wasxfail})")


def pytest_deselected(items: list[pytest.Item]) -> None:
    _not_run.extend(f"deselected: {item.nodeid}" for item in items)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if ci_enabled() and _not_run and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not (ci_enabled() and _not_run):
        return
    terminalreporter.section("CI runs every test", sep="=", red=True, bold=True)
    terminalreporter.line(
        f"{len(_not_run)} test(s) did not run as written; under CI=true that fails the run:"
    )
    for line in _not_run:
        terminalreporter.line(f"  {line}")


def _reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return str(report.wasxfail) or "xfail"
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)
