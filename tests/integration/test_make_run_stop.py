"""`make run` (scripts/run) starts quietly and stops quietly: DEBUG off with the sandbox on
(the product's own error pages, never Django's debug page listing every URL pattern), static
files still served, a secret of its own kept in the data folder, and Ctrl-C stops every
process without a line that reads like a crash, naming what outlives it (deployed
environments) and how to stop that."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.make_run import make_run_start, make_run_wait_until_running
from tests.swedify.test_configuration_errors import REPO
from tests.swedify.test_make_run import run_env

# scripts/run starts the project's own .venv: a checkout with `make run` set up.
pytestmark = [pytest.mark.integration, pytest.mark.slow]

START_TIMEOUT = 180


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def port_open(port: str) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
    except urllib.error.URLError:
        return False
    return True


def test_sandbox_mode_runs_without_debug_and_ctrl_c_stops_everything_quietly(
    tmp_path: Path,
) -> None:
    env = run_env(tmp_path)
    (tmp_path / "home").mkdir()
    output = tmp_path / "run.out"
    with output.open("w") as out:
        script = make_run_start(repo=REPO, env=env, out=out)
    try:
        make_run_wait_until_running(script, output, timeout=START_TIMEOUT)
        base = f"http://127.0.0.1:{env['PORT']}"

        status, body = fetch(f"{base}/no-such-page/")
        assert status == 404
        assert "URLconf" not in body  # Django's debug 404 lists every URL pattern
        assert fetch(f"{base}/static/swedify/site.css")[0] == 200
        secret = tmp_path / "var" / "secret-key"
        assert len(secret.read_text().strip()) >= 50
        assert oct(secret.stat().st_mode & 0o777) == oct(0o600)
        # What a deploy would leave behind: a slot's pid file.
        (tmp_path / "var" / "slots").mkdir(exist_ok=True)
        (tmp_path / "var" / "slots" / "production-blue.pid").write_text("999999")

        os.killpg(script.pid, signal.SIGINT)
        try:
            assert script.wait(timeout=60) == 0, output.read_text()
        except subprocess.TimeoutExpired:
            pytest.fail(f"make run did not stop within 60 s:\n{output.read_text()}")
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
            script.wait(timeout=10)
    text = output.read_text()
    assert "Stopping Swedify... (Ctrl-C again to stop at once)\nStopped.\n" in text
    assert "a process stopped" not in text
    assert "No hostname was supplied" not in text
    assert "manage.py environment_stop --all" in text
    assert not port_open(env["PORT"])
    assert not port_open(env["SANDBOX_PORT"])


def test_a_process_that_stops_by_itself_is_named_and_the_others_are_stopped(
    tmp_path: Path,
) -> None:
    env = run_env(tmp_path)
    (tmp_path / "home").mkdir()
    output = tmp_path / "run.out"
    with output.open("w") as out:
        script = make_run_start(repo=REPO, env=env, out=out)
    try:
        make_run_wait_until_running(script, output, timeout=START_TIMEOUT)
        sandbox = subprocess.run(
            ["pgrep", "-f", f"sandbox --port {env['SANDBOX_PORT']}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert len(sandbox) == 1
        os.kill(int(sandbox[0]), signal.SIGTERM)
        assert script.wait(timeout=60) == 1
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
            script.wait(timeout=10)
    assert "a process stopped by itself" in output.read_text()
    assert not port_open(env["PORT"])


def test_a_second_ctrl_c_stops_everything_at_once(tmp_path: Path) -> None:
    env = run_env(tmp_path)
    (tmp_path / "home").mkdir()
    output = tmp_path / "run.out"
    with output.open("w") as out:
        script = make_run_start(repo=REPO, env=env, out=out)
    try:
        make_run_wait_until_running(script, output, timeout=START_TIMEOUT)
        os.killpg(script.pid, signal.SIGINT)
        deadline = time.monotonic() + 60
        while "Stopping Swedify" not in output.read_text():
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.05)
        os.killpg(script.pid, signal.SIGINT)
        assert script.wait(timeout=60) == 130
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
            script.wait(timeout=10)
    assert "Stopped at once." in output.read_text()
    assert not port_open(env["PORT"])
    assert not port_open(env["SANDBOX_PORT"])
