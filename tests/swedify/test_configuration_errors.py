"""Bad configuration stops Swedify with one clear line, never a traceback wall."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_python(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    # The caller's own configuration (CI's services, a deploy's SECRET_KEY) must not leak in.
    inherited = (
        "DATABASE_", "REDIS_", "CELERY_", "SECRET_KEY", "DEBUG", "SWEDIFY_", "SPOTIFY_",
        "SESSION_COOKIE_",
        # Set in this process by the browser tests (Playwright runs an event loop).
        "DJANGO_ALLOW_ASYNC_UNSAFE",
    )  # fmt: skip
    clean = {k: v for k, v in os.environ.items() if not k.startswith(inherited)}
    clean.update(env)
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_one_clear_line(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert expected in lines[0]


def test_it_names_a_database_url_with_an_unsupported_scheme() -> None:
    result = run_python(["manage.py", "check"], DATABASE_URL="mysql://root@127.0.0.1/x")
    assert_one_clear_line(result, "DATABASE_URL must start with sqlite:/// or postgres://")


def test_it_names_a_malformed_database_url() -> None:
    result = run_python(["manage.py", "check"], DATABASE_URL="postgres://a:b@host:notaport/db")
    assert_one_clear_line(result, "DATABASE_URL is malformed")


def test_it_names_a_database_url_without_a_database() -> None:
    result = run_python(["manage.py", "check"], DATABASE_URL="postgres://postgres@127.0.0.1:5432")
    assert_one_clear_line(result, "DATABASE_URL names no database")


def test_it_names_a_redis_url_with_a_wrong_scheme() -> None:
    result = run_python(["manage.py", "check"], REDIS_URL="http://127.0.0.1:6379")
    assert_one_clear_line(result, "REDIS_URL must start with redis://")


def test_it_names_a_debug_value_that_is_not_a_boolean() -> None:
    result = run_python(["manage.py", "check"], DEBUG="maybe")
    assert_one_clear_line(result, "DEBUG must be true or false")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{not json", "SWEDIFY_PIPELINE_OVERRIDES is not JSON"),
        ('{"analysis": 120}', "SWEDIFY_PIPELINE_OVERRIDES must be a JSON object"),
    ],
)
def test_it_names_pipeline_overrides_that_are_not_a_json_object(value, message) -> None:
    result = run_python(["manage.py", "check"], SWEDIFY_PIPELINE_OVERRIDES=value)
    assert_one_clear_line(result, message)


def test_pipeline_overrides_come_from_the_environment_as_json() -> None:
    script = (
        "import django, json; django.setup(); from deployments.pipeline import "
        "pipeline_definition; print(json.dumps({s.key: s.params for s in pipeline_definition()}"
        "['analysis']))"
    )
    overrides = '{"analysis": {"params": {"window_seconds": 120}}}'
    result = run_python(
        ["-c", script],
        DJANGO_SETTINGS_MODULE="swedify.settings",
        SWEDIFY_PIPELINE_OVERRIDES=overrides,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["window_seconds"] == 120


def test_preflight_names_an_unreachable_redis_at_start_up(tmp_path: Path) -> None:
    result = run_python(
        ["manage.py", "preflight"],
        DEBUG="true",
        SWEDIFY_DATA_DIR=str(tmp_path),
        REDIS_URL=f"redis://127.0.0.1:{unused_port()}/0",
    )
    assert_one_clear_line(result, "cannot reach Redis at REDIS_URL")


def test_preflight_names_an_unreachable_database(tmp_path: Path) -> None:
    result = run_python(
        ["manage.py", "preflight"],
        DEBUG="true",
        SWEDIFY_DATA_DIR=str(tmp_path),
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{unused_port()}/swedify",
    )
    assert_one_clear_line(result, "cannot reach the database")


def test_preflight_passes_with_the_embedded_defaults(tmp_path: Path) -> None:
    result = run_python(["manage.py", "preflight"], DEBUG="true", SWEDIFY_DATA_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "configuration ok" in result.stdout


def test_the_web_app_refuses_to_start_in_production_with_the_development_secret(
    tmp_path: Path,
) -> None:
    result = run_python(
        ["-c", "import swedify.wsgi"], DEBUG="false", SWEDIFY_DATA_DIR=str(tmp_path)
    )
    assert_one_clear_line(result, "SECRET_KEY is the development key while DEBUG is off")


def test_the_web_app_starts_in_production_with_a_real_secret(tmp_path: Path) -> None:
    result = run_python(
        ["-c", "import swedify.wsgi"],
        DEBUG="false",
        SECRET_KEY="a-real-secret-" + "x" * 40,
        SWEDIFY_SANDBOX="true",
        SWEDIFY_DATA_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("debug", ["false", "true"])
def test_the_deploy_check_reports_the_development_secret_only_without_debug(
    tmp_path: Path, debug: str
) -> None:
    result = run_python(
        ["manage.py", "check", "--deploy"], DEBUG=debug, SWEDIFY_DATA_DIR=str(tmp_path)
    )
    assert ("swedify.E001" in result.stderr) is (debug == "false")


def test_a_command_against_a_missing_database_says_so_in_one_line(tmp_path: Path) -> None:
    result = run_python(
        ["manage.py", "migrate"],
        DEBUG="true",
        SWEDIFY_DATA_DIR=str(tmp_path),
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/swedify_no_such_database",
    )
    assert_one_clear_line(result, "cannot use the database")
    assert "swedify_no_such_database" in result.stderr
