"""CI cannot pass on less than the whole suite on the real services, and two runs side by
side do not share a database (tests/run_guards.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.run_guards import ci_environment_problems, run_database_names, run_id

REPO = Path(__file__).resolve().parents[1]
SQLITE = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "/data/db.sqlite3"}}
POSTGRESQL = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "swedify_test"}}
LOCAL_MEMORY = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
REDIS = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://h/0"}}


def test_under_ci_the_suite_runs_on_postgresql_and_redis() -> None:
    # Outside CI any database and cache will do; under CI=true this is what fails a run that
    # quietly fell back to SQLite or the local-memory cache.
    problems = ci_environment_problems(
        environ=os.environ, databases=settings.DATABASES, caches=settings.CACHES
    )
    assert problems == []


def test_ci_refuses_sqlite_and_a_local_memory_cache() -> None:
    ci = {"CI": "true"}

    problems = ci_environment_problems(environ=ci, databases=SQLITE, caches=LOCAL_MEMORY)

    assert problems == [
        "CI runs on PostgreSQL, but the database engine is django.db.backends.sqlite3",
        "CI runs on Redis, but the cache backend is django.core.cache.backends.locmem.LocMemCache",
    ]
    assert ci_environment_problems(environ=ci, databases=POSTGRESQL, caches=REDIS) == []
    assert ci_environment_problems(environ={}, databases=SQLITE, caches=LOCAL_MEMORY) == []


def test_each_run_names_its_own_postgresql_test_database() -> None:
    run = run_id({"SWEDIFY_TEST_RUN": "1203-0830_4242"})

    assert run == "1203_0830_4242"
    assert run_database_names(POSTGRESQL, run) == {"default": "test_swedify_test_1203_0830_4242"}
    # SQLite's test file is in the run's own data folder already; no run id, no renaming.
    assert run_database_names(SQLITE, run) == {}
    assert run_database_names(POSTGRESQL, run_id({})) == {}


@pytest.mark.django_db
def test_this_run_works_in_a_test_database_of_its_own() -> None:
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        assert Path(name).parent == Path(settings.DATA_DIR)
    else:
        suffix = f"_{run_id()}" if run_id() else ""
        assert name.startswith("test_")
        assert name.endswith(suffix)


SAMPLE_SUITE = """
import pytest

def test_runs():
    pass

def test_skipped():
    pytest.skip("no HAProxy here")

@pytest.mark.xfail(reason="a known bug")
def test_xfails():
    assert False

def test_left_out():
    pass
"""


def run_sample_suite(tmp_path: Path, *args: str, ci: bool) -> subprocess.CompletedProcess:
    (tmp_path / "test_sample.py").write_text(textwrap.dedent(SAMPLE_SUITE))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k != "CI"}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only the plugin under test
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "tests.run_guards", "-p", "no:cacheprovider",
            "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path), str(tmp_path), *args,
        ],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_under_ci_a_skip_an_xfail_or_a_deselection_fails_the_run_and_is_named(tmp_path) -> None:
    result = run_sample_suite(tmp_path, "-k", "not left_out", ci=True)

    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout
    assert "CI runs every test" in result.stdout
    assert "skipped: test_sample.py::test_skipped (no HAProxy here)" in result.stdout
    assert "xfailed: test_sample.py::test_xfails (a known bug)" in result.stdout
    assert "deselected: test_sample.py::test_left_out" in result.stdout
    assert "test_runs" not in result.stdout.split("CI runs every test")[1]


def test_outside_ci_the_same_run_passes(tmp_path) -> None:
    result = run_sample_suite(tmp_path, "-k", "not left_out", ci=False)

    assert result.returncode == pytest.ExitCode.OK, result.stdout
    assert "CI runs every test" not in result.stdout


def test_under_ci_a_run_of_every_test_passes(tmp_path) -> None:
    result = run_sample_suite(tmp_path, "-k", "test_runs or left_out", ci=True)

    # `-k` deselected two: still a failure. Only the whole sample, all passing, is green.
    assert result.returncode == pytest.ExitCode.TESTS_FAILED
    (tmp_path / "test_sample.py").unlink()
    (tmp_path / "test_all_pass.py").write_text("def test_one():\n    pass\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(CI="true", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    passing = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "tests.run_guards", "-p", "no:cacheprovider",
            "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path), str(tmp_path),
        ],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert passing.returncode == pytest.ExitCode.OK, passing.stdout
