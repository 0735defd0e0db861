"""`make run` (scripts/run): the debug page only in sandbox mode, private files, and a gunicorn
without a control socket that a second `make run` or a blue-green slot would fight over."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.make_run import make_run_start, make_run_wait_until_running
from tests.swedify.test_configuration_errors import REPO, unused_port

# scripts/run starts the project's own .venv: a checkout with `make run` set up, which the
# pipeline's quality gate (a release export) is not.
pytestmark = pytest.mark.integration

START_TIMEOUT = 180


def run_env(tmp_path: Path, **env: str) -> dict[str, str]:
    inherited = (
        "DATABASE_", "REDIS_", "CELERY_", "SECRET_KEY", "DEBUG", "SWEDIFY_", "SPOTIFY_",
        "SESSION_COOKIE_", "PORT", "SANDBOX_PORT",
    )  # fmt: skip
    clean = {k: v for k, v in os.environ.items() if not k.startswith(inherited)}
    clean.update(
        HOME=str(tmp_path / "home"),
        SWEDIFY_DATA_DIR=str(tmp_path / "var"),
        PORT=str(unused_port()),
        SANDBOX_PORT=str(unused_port()),
        **env,
    )
    return clean


def test_pointed_at_real_spotify_it_does_not_turn_debug_on(tmp_path: Path) -> None:
    # DEBUG off means the development secret is refused: the proof that DEBUG stayed off.
    env = run_env(tmp_path, SPOTIFY_CLIENT_ID="real-client", SPOTIFY_CLIENT_SECRET="real")
    result = subprocess.run(
        ["scripts/run"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "SECRET_KEY is the development key while DEBUG is off" in result.stderr


def test_in_sandbox_mode_the_development_secret_is_not_needed(tmp_path: Path) -> None:
    # The negative control: the same development secret passes the check when DEBUG is on;
    # an unreachable database then stops it before anything starts.
    env = run_env(tmp_path, DATABASE_URL=f"postgres://postgres@127.0.0.1:{unused_port()}/x")
    result = subprocess.run(
        ["scripts/run"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "cannot reach the database" in result.stderr
    assert "SECRET_KEY" not in result.stderr


@pytest.mark.slow
def test_it_serves_without_a_gunicorn_control_socket_and_keeps_its_files_private(
    tmp_path: Path,
) -> None:
    env = run_env(tmp_path)
    (tmp_path / "home").mkdir()
    output = tmp_path / "run.out"
    with output.open("w") as out:
        script = make_run_start(repo=REPO, env=env, out=out)
    try:
        make_run_wait_until_running(script, output, timeout=START_TIMEOUT)
        health = urllib.request.urlopen(f"http://127.0.0.1:{env['PORT']}/health", timeout=10)
        assert health.status == 200
        # gunicorn's default control socket is ~/.gunicorn/gunicorn.ctl.
        assert not (tmp_path / "home" / ".gunicorn").exists()
        data_dir = tmp_path / "var"
        assert oct(data_dir.stat().st_mode & 0o777) == oct(0o700)
        assert oct((data_dir / "db.sqlite3").stat().st_mode & 0o777) == oct(0o600)
    finally:
        os.killpg(script.pid, signal.SIGINT)
        try:
            script.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(script.pid, signal.SIGKILL)
            script.wait(timeout=10)
