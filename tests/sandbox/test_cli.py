"""`python -m sandbox` starts a separate process that announces itself in one line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import sandbox
from sandbox.testing import spawn_sandbox
from tests.sandbox.conftest import http

REPO_ROOT = Path(sandbox.__file__).resolve().parent.parent


def test_the_cli_serves_with_the_flags_and_users_file_given(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    users.write_text(json.dumps([{"id": "filed", "tracks": 7}]))
    args = ["--extended-quota", "--seed", "cli", "--users", str(users)]
    with spawn_sandbox(args) as sandbox:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sandbox.url)
        listed = http("GET", f"{sandbox.url}/sandbox/users").json()["users"]
        assert {"listener", "filed"} <= {u["id"] for u in listed}
        assert http("GET", f"{sandbox.url}/sandbox/config").json()["extended_quota"] is True
        token = sandbox.login("listener")["access_token"]
        assert http("GET", f"{sandbox.api_url}/me", token=token).json()["id"] == "listener"
    assert sandbox.process.returncode == 0


def test_the_cli_prints_exactly_one_line_on_start() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert re.fullmatch(r"Spotify sandbox listening on http://127\.0\.0\.1:\d+\n", line)
    finally:
        process.terminate()
        rest, _ = process.communicate(timeout=5)
    assert rest == ""
    assert process.returncode == 0


def test_the_cli_refuses_a_bad_users_file(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    users.write_text('[{"id": "x", "tracks": -1}]')
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", "--port", "0", "--users", str(users)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 2
    assert "tracks must be an integer" in result.stderr
    assert result.stdout == ""
