"""A deploy never touches production data: gate commands run in a scrubbed environment, and
the suite they run refuses services that are not marked for tests.

"Production" here is a Redis database of its own (app keys, another application's key, a
queued Celery task) and a PostgreSQL database of its own with listener rows, named in the
pipeline worker's environment exactly as a production worker's would be.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest
from django.conf import settings

from deployments.adapters import CommandResult, Infrastructure, gate_environment
from deployments.models import PipelineRun
from deployments.pipeline import pipeline_run_create, pipeline_run_execute
from deployments.services import release_create
from tests.deployments.fakes import FAST_PIPELINE, FakeInfrastructure
from tests.services_guard import TEST_REDIS_MARKER

PRODUCTION_REDIS_DB = 14
PRODUCTION_DATABASE = "swedify_gate_production"
PRODUCTION_VARIABLES = {
    "REDIS_URL": f"redis://127.0.0.1:6379/{PRODUCTION_REDIS_DB}",
    "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{PRODUCTION_REDIS_DB}",
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{PRODUCTION_DATABASE}",
    "SECRET_KEY": "production-secret-that-no-gate-may-see",
    "SWEDIFY_TOKEN_KEYS": "production-token-key",
    "SPOTIFY_CLIENT_ID": "production-client",
    "SPOTIFY_CLIENT_SECRET": "production-client-secret",
}
# Two suites side by side (two `make test`) would drop each other's "production" database
# and flush each other's Redis database: one run at a time holds them.
PRODUCTION_LOCK = Path(tempfile.gettempdir()) / "swedify-tests-gate-production.lock"
PRODUCTION_LOCK_TIMEOUT = 600.0
# A file of the suite whose tests and fixtures reset the cache: with production's REDIS_URL
# and no guard, each reset was a FLUSHDB of production.
CACHE_RESETTING_TESTS = "tests/genres/test_artist_cache.py"


def test_a_gate_command_inherits_none_of_the_workers_services_or_secrets(monkeypatch) -> None:
    for name, value in PRODUCTION_VARIABLES.items():
        monkeypatch.setenv(name, value)

    result = Infrastructure().run_command("env", cwd=Path(settings.BASE_DIR), timeout=30)

    assert result.returncode == 0, result.output
    seen = dict(line.split("=", 1) for line in result.output.splitlines() if "=" in line)
    assert set(PRODUCTION_VARIABLES) & set(seen) == set()
    assert not any(value in result.output for value in PRODUCTION_VARIABLES.values())
    assert seen["PATH"] == os.environ["PATH"]
    data_dir = Path(seen["SWEDIFY_DATA_DIR"])
    assert data_dir != Path(settings.DATA_DIR)
    assert not data_dir.exists(), "the gate's data folder is removed after the command"


def test_the_gate_environment_is_only_the_embedded_defaults(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", PRODUCTION_VARIABLES["DATABASE_URL"])

    env = gate_environment(data_dir=tmp_path)

    assert env["SWEDIFY_DATA_DIR"] == str(tmp_path)
    assert not any(name.endswith("_URL") or "SECRET" in name for name in env)


# --- Production Redis and PostgreSQL ---------------------------------------------------------


@dataclass
class Production:
    redis: object
    database_url: str

    def redis_snapshot(self) -> dict[bytes, bytes]:
        """Every key of the production Redis database, byte for byte (DUMP)."""
        return {key: self.redis.dump(key) for key in self.redis.scan_iter()}

    def database_snapshot(self) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.database_url.replace("postgres://", "postgresql://")) as conn:
            users = conn.execute("SELECT * FROM auth_user ORDER BY id").fetchall()
            accounts = conn.execute("SELECT * FROM genres_spotifyaccount ORDER BY id").fetchall()
        return users + accounts


@pytest.fixture(scope="module")
def production() -> Iterator[Production]:
    redis = pytest.importorskip("redis")
    psycopg = pytest.importorskip("psycopg")
    client = redis.Redis(host="127.0.0.1", port=6379, db=PRODUCTION_REDIS_DB, socket_timeout=2)
    try:
        client.ping()
        admin = psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True)
    except (redis.RedisError, psycopg.Error) as error:
        pytest.skip(f"needs the local Redis and PostgreSQL: {error}")
    lock = _hold_exclusively(PRODUCTION_LOCK, timeout=PRODUCTION_LOCK_TIMEOUT)
    admin.execute(f"DROP DATABASE IF EXISTS {PRODUCTION_DATABASE} WITH (FORCE)")
    admin.execute(f"CREATE DATABASE {PRODUCTION_DATABASE}")
    database_url = PRODUCTION_VARIABLES["DATABASE_URL"]
    env = {**os.environ, "DATABASE_URL": database_url, "SWEDIFY_SANDBOX": "true"}
    env.pop("REDIS_URL", None)
    env.pop("CELERY_BROKER_URL", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=settings.BASE_DIR,
        env=env,
        check=True,
        timeout=180,
    )
    with psycopg.connect(database_url.replace("postgres://", "postgresql://")) as conn:
        conn.execute(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,"
            " email, is_staff, is_active, date_joined) VALUES"
            " ('!', false, 'spotify:listener', '', '', '', false, true, now())"
        )
    try:
        yield Production(redis=client, database_url=database_url)
    finally:
        client.flushdb()
        client.close()
        admin.execute(f"DROP DATABASE IF EXISTS {PRODUCTION_DATABASE} WITH (FORCE)")
        admin.close()
        lock.close()  # releases the lock


def _hold_exclusively(path: Path, *, timeout: float) -> IO[bytes]:
    """An exclusive lock on ``path``, held until the returned file is closed."""
    handle = path.open("ab")
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                raise TimeoutError(f"{path} held by another test run for {timeout:g} s") from None
            time.sleep(0.2)


@pytest.fixture
def production_data(production: Production) -> Production:
    """The production Redis holds an app key, another application's key and a queued task."""
    production.redis.flushdb()
    production.redis.set(":1:genres:artist:v1:0TnOYISbd1XYRBk9myaseg", b'{"genres":["pop"]}')
    production.redis.set("swedify:1:genres:artist:v1:1dfeR4HaWDbWqFHLkxsg1d", b'{"genres":[]}')
    production.redis.set("other-application:session:42", b"someone else's data")
    production.redis.lpush("celery", b'{"body": "a queued scan", "headers": {"id": "t-1"}}')
    return production


class GateOnlyInfrastructure(FakeInfrastructure):
    """Fake slots and proxies, but the real command runner: the gate is what is under test."""

    def run_command(self, command: str, *, cwd: Path, timeout: float) -> CommandResult:
        self.commands.append(command)
        return Infrastructure().run_command(command, cwd=cwd, timeout=timeout)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.django_db
def test_a_deploy_through_the_real_pipeline_leaves_production_redis_and_rows_intact(
    production_data: Production, settings, monkeypatch
) -> None:
    from deployments.adapters import use_infrastructure
    from tests.deployments.fakes import make_environments

    redis_before = production_data.redis_snapshot()
    rows_before = production_data.database_snapshot()
    assert len(redis_before) == 4
    assert rows_before
    for name, value in PRODUCTION_VARIABLES.items():
        monkeypatch.setenv(name, value)
    settings.SWEDIFY_PIPELINE_OVERRIDES = {
        **FAST_PIPELINE,
        "quality": {
            "params": {
                "cwd": "project",
                "commands": [
                    "{python} manage.py check",
                    f"{{python}} -m pytest -q -p no:cacheprovider {CACHE_RESETTING_TESTS}",
                ],
            }
        },
        "security": {"params": {"commands": []}},
    }
    fake = GateOnlyInfrastructure()
    make_environments(fake)

    with use_infrastructure(fake):
        release = release_create(git_sha="a" * 40, actor_name="test")
        run = pipeline_run_execute(
            run_id=pipeline_run_create(release=release, actor_name="test").pk
        )

    quality = run.stages.get(key="quality")
    assert quality.outcome == "succeeded", quality.log
    assert "passed" in quality.log
    assert run.status == PipelineRun.Status.SUCCEEDED, run.error
    assert production_data.redis_snapshot() == redis_before
    assert production_data.database_snapshot() == rows_before


@pytest.mark.integration
def test_the_suite_refuses_an_unmarked_redis_in_one_line_and_leaves_it_alone(
    production_data: Production,
) -> None:
    before = production_data.redis_snapshot()
    env = {**os.environ, "REDIS_URL": PRODUCTION_VARIABLES["REDIS_URL"], "SWEDIFY_SANDBOX": "true"}
    env.pop("DATABASE_URL", None)
    env.pop("CELERY_BROKER_URL", None)

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", CACHE_RESETTING_TESTS],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    refusal = [line for line in (result.stdout + result.stderr).splitlines() if "refused" in line]
    assert len(refusal) == 1
    assert "not marked for tests" in refusal[0]
    assert f"set {TEST_REDIS_MARKER} 1" in refusal[0]
    assert production_data.redis_snapshot() == before


@pytest.mark.integration
def test_the_suite_refuses_a_database_not_named_for_tests() -> None:
    env = {**os.environ, "DATABASE_URL": PRODUCTION_VARIABLES["DATABASE_URL"]}
    env.pop("REDIS_URL", None)
    env.pop("CELERY_BROKER_URL", None)

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", CACHE_RESETTING_TESTS],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert f"database '{PRODUCTION_DATABASE}' is not marked for tests" in result.stderr


@pytest.mark.integration
def test_the_snapshot_would_see_a_flush_negative_control(production_data: Production) -> None:
    """What the old gate did: a process with production's REDIS_URL clears Django's cache.
    The snapshot comparison above must notice, or its pass would prove nothing."""
    before = production_data.redis_snapshot()
    script = "import django; django.setup(); from django.core.cache import cache; cache.clear()"
    env = {**os.environ, "REDIS_URL": PRODUCTION_VARIABLES["REDIS_URL"], "SWEDIFY_SANDBOX": "true"}
    env.pop("DATABASE_URL", None)
    env.pop("CELERY_BROKER_URL", None)
    env["DJANGO_SETTINGS_MODULE"] = "swedify.settings"

    subprocess.run(
        [sys.executable, "-c", script], cwd=settings.BASE_DIR, env=env, check=True, timeout=60
    )

    assert production_data.redis_snapshot() != before
    assert production_data.redis_snapshot() == {}


@pytest.mark.integration
def test_a_cache_reset_deletes_only_keys_under_the_suites_prefix(
    production_data: Production,
) -> None:
    from django_redis.cache import RedisCache

    from swedify.cache import cache_clear_own

    production_data.redis.set(TEST_REDIS_MARKER, b"1")
    cache = RedisCache(
        PRODUCTION_VARIABLES["REDIS_URL"], {"KEY_PREFIX": "swedify-suite", "TIMEOUT": 60}
    )
    cache.set("artist:a", {"genres": ["pop"]})
    cache.set("artist:b", {"genres": ["rock"]}, version=2)
    others = production_data.redis_snapshot()

    deleted = cache_clear_own(cache)

    assert deleted == 2
    after = production_data.redis_snapshot()
    assert not any(key.startswith(b"swedify-suite:") for key in after)
    assert {k: v for k, v in others.items() if not k.startswith(b"swedify-suite:")} == after
    assert b"other-application:session:42" in after
    assert b"celery" in after
