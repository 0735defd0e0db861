"""The deploy benchmark across machines, its own machinery without starting anything: the bad
release it deploys (a commit on no branch whose app answers 500 to every second proxied
request) and the verdicts of its table."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from benchmarks import deploy_hosts


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A repository of its own (the suite also runs inside a release export, without git)."""
    (tmp_path / "swedify").mkdir()
    (tmp_path / "swedify" / "wsgi.py").write_text("application = None\n")
    (tmp_path / "README.md").write_text("readme\n")
    for command in (
        ["init", "-q", "-b", "main"],
        ["add", "."],
        ["-c", "user.name=t", "-c", "user.email=t@127.0.0.1", "commit", "-q", "-m", "first"],
    ):
        subprocess.run(["git", "-C", str(tmp_path), *command], check=True, capture_output=True)
    return tmp_path


def git(repository: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repository), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def bad_application() -> Any:
    """The bad release's wrapper around an application that always answers 200."""

    def good(environ: dict, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    namespace: dict[str, Any] = {"application": good}
    exec(deploy_hosts.BAD_WSGI_SUFFIX, namespace)  # noqa: S102 - the benchmark's own patch
    return namespace["application"]


def statuses(application: Any, environ: dict, times: int) -> list[str]:
    seen: list[str] = []
    for _ in range(times):
        application(environ, lambda status, headers: seen.append(status))
    return seen


def test_the_bad_release_answers_500_to_every_second_proxied_request() -> None:
    application = bad_application()

    seen = statuses(application, {"HTTP_X_FORWARDED_FOR": "127.0.0.9"}, 10)

    assert seen.count("200 OK") == 5
    assert seen.count("500 Internal Server Error") == 5


def test_the_bad_release_answers_health_gates_that_ask_the_slot_directly() -> None:
    """Negative control: without X-Forwarded-For (gates, HAProxy checks) it is healthy, so it
    really goes live and the analysis has something to roll back."""
    assert statuses(bad_application(), {}, 10) == ["200 OK"] * 10


def test_the_bad_commit_is_head_plus_the_patch_on_no_branch(repository: Path) -> None:
    head = git(repository, "rev-parse", "HEAD")
    refs_before = git(repository, "for-each-ref", "--format=%(objectname) %(refname)")

    bad = deploy_hosts.bad_commit(repository, head)

    assert git(repository, "rev-parse", f"{bad}^") == head
    assert git(repository, "diff", "--name-only", head, bad) == "swedify/wsgi.py"
    assert "benchmark: bad release" in git(repository, "show", f"{bad}:swedify/wsgi.py")
    # No branch moved, none points at it, and the working tree and index are untouched.
    assert git(repository, "for-each-ref", "--format=%(objectname) %(refname)") == refs_before
    assert git(repository, "status", "--porcelain") == ""


def step(name: str, **values: Any) -> dict[str, Any]:
    base = deploy_hosts.Step(name, requests=100, status="succeeded", total_seconds=10.0)
    fields = {**base.__dict__, **values}
    return fields


def test_a_step_past_its_target_fails_the_table(capsys: Any) -> None:
    steps = [
        step("full deploy"),
        step("host killed while serving", status="taken out"),
        step("manual rollback"),
        step("automatic rollback (bad release)", bad_to_old_seconds=75.0),
    ]

    assert deploy_hosts.print_table({"steps": steps}, {}) is False
    assert "FAIL" in capsys.readouterr().out


def test_every_step_within_its_target_passes_and_a_missing_analysis_is_said(capsys: Any) -> None:
    steps = [
        step("full deploy"),
        step("host killed while serving", status="taken out", transport_errors=1),
        step("manual rollback"),
        step(
            "automatic rollback (bad release)",
            available=False,
            note="not available (no analysis stage)",
        ),
    ]

    assert deploy_hosts.print_table({"steps": steps}, {"full deploy": "12.9 s"}) is True
    out = capsys.readouterr().out
    assert "not available (no analysis stage)" in out
    assert "FAIL" not in out
    assert "12.9 s" in out


def test_failed_requests_fail_a_deploy(capsys: Any) -> None:
    steps = [
        step("full deploy", non_2xx=1),
        step("host killed while serving", status="taken out"),
        step("manual rollback"),
        step("automatic rollback (bad release)", bad_to_old_seconds=3.0),
    ]

    assert deploy_hosts.print_table({"steps": steps}, {}) is False
