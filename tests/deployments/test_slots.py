"""App slots: real gunicorn processes serving a git-exported release on loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from deployments.slots import (
    SlotError,
    port_in_use,
    process_alive,
    release_source,
    slot_pid_file,
    slot_start,
    slot_status,
    slot_stop,
    slot_url,
)
from tests.deployments.bluegreen import (
    SLOT_ENV,
    free_port,
    head_release,
    new_environment,
    running_slot,
    served_version,
)

pytestmark = pytest.mark.integration


def test_release_source_exports_the_commit_once(tmp_path: Path) -> None:
    first = head_release()
    second = head_release()
    assert first == second
    assert first.parent == Path(settings.DATA_DIR) / "releases"
    committed = subprocess.run(
        ["git", "-C", str(settings.BASE_DIR), "show", "HEAD:swedify/settings.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert (first / "swedify" / "settings.py").read_text() == committed
    assert not (first / ".git").exists()


def test_release_source_refuses_what_is_not_a_commit() -> None:
    with pytest.raises(SlotError, match="not a git commit SHA"):
        release_source(git_sha="HEAD; rm -rf /")
    with pytest.raises(SlotError, match="rev-parse"):
        release_source(git_sha="0" * 40)


def test_a_slot_serves_its_release_with_its_version() -> None:
    environment, source = new_environment(), head_release()
    with running_slot(
        environment=environment, slot="blue", version="3.1.4", source_dir=source
    ) as process:
        assert served_version(process.port) == "3.1.4"
        status = slot_status(environment=environment, slot="blue")
        assert status is not None
        assert (status.port, status.version, status.pid) == (process.port, "3.1.4", process.pid)
        # The slot runs the exported release, not this checkout.
        assert Path(os.readlink(f"/proc/{process.pid}/cwd")) == source
        assert slot_url(port=process.port) == f"http://127.0.0.1:{process.port}"


def test_starting_a_running_slot_again_returns_it_but_another_version_is_refused() -> None:
    environment, source = new_environment(), head_release()
    with running_slot(
        environment=environment, slot="green", version="1.0.0", source_dir=source
    ) as process:
        again = slot_start(
            environment=environment,
            slot="green",
            port=process.port,
            version="1.0.0",
            source_dir=source,
            env=SLOT_ENV,
        )
        assert again.pid == process.pid
        with pytest.raises(SlotError, match=r"already runs 1\.0\.0"):
            slot_start(
                environment=environment,
                slot="green",
                port=process.port,
                version="2.0.0",
                source_dir=source,
                env=SLOT_ENV,
            )


def test_stopping_waits_for_the_drain_then_frees_the_port() -> None:
    environment, source = new_environment(), head_release()
    with running_slot(
        environment=environment, slot="blue", version="1.0.0", source_dir=source
    ) as process:
        started = time.monotonic()
        slot_stop(environment=environment, slot="blue", drain_seconds=0.3)
        assert time.monotonic() - started >= 0.3
        assert not process_alive(process.pid)
        assert not port_in_use(process.port)
        assert slot_status(environment=environment, slot="blue") is None


SLOW_APP = """
import json, os, time

def application(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(1.0)
    body = json.dumps({"status": "ok", "version": os.environ["SWEDIFY_VERSION"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
"""


def test_stopping_lets_an_in_flight_request_finish(tmp_path: Path) -> None:
    # A stand-in release whose one page takes a second, to have a request in flight.
    (tmp_path / "swedify").mkdir()
    (tmp_path / "swedify" / "__init__.py").write_text("")
    (tmp_path / "swedify" / "wsgi.py").write_text(SLOW_APP)
    environment = new_environment()
    with running_slot(
        environment=environment, slot="blue", version="9.0.0", source_dir=tmp_path
    ) as process:
        answers: list[int] = []

        def slow_request() -> None:
            with urllib.request.urlopen(f"{slot_url(port=process.port)}/slow", timeout=5) as r:
                answers.append(r.status)

        request = threading.Thread(target=slow_request)
        request.start()
        time.sleep(0.3)  # the request is being served now
        slot_stop(environment=environment, slot="blue")
        request.join(timeout=5)
        assert answers == [200]
        assert not port_in_use(process.port)


def test_status_after_a_crash_is_none_and_the_stale_pid_file_goes() -> None:
    environment, source = new_environment(), head_release()
    with running_slot(
        environment=environment, slot="blue", version="1.0.0", source_dir=source
    ) as process:
        os.kill(process.pid, signal.SIGKILL)  # the master only: its workers live on a while
        deadline = time.monotonic() + 5
        while process_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert slot_pid_file(environment=environment, slot="blue").exists()
        assert slot_status(environment=environment, slot="blue") is None
        assert not slot_pid_file(environment=environment, slot="blue").exists()
        # A crashed slot can be started again on the same port: the orphaned workers that
        # still hold it are stopped first.
        restarted = slot_start(
            environment=environment,
            slot="blue",
            port=process.port,
            version="1.0.1",
            source_dir=source,
            env=SLOT_ENV,
        )
        assert served_version(restarted.port) == "1.0.1"


def test_a_release_that_cannot_boot_fails_fast_with_its_log_tail() -> None:
    environment, source = new_environment(), head_release()
    started = time.monotonic()
    with pytest.raises(SlotError, match="SECRET_KEY is the development key"):
        slot_start(
            environment=environment,
            slot="blue",
            port=free_port(),
            version="1.0.0",
            source_dir=source,
            env={"SECRET_KEY": "", "DEBUG": "false"},
        )
    assert time.monotonic() - started < 10
    assert slot_status(environment=environment, slot="blue") is None


def test_it_refuses_a_port_another_process_holds() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        with pytest.raises(SlotError, match="already in use"):
            slot_start(
                environment=new_environment(),
                slot="blue",
                port=squatter.getsockname()[1],
                version="1.0.0",
                source_dir=head_release(),
                env=SLOT_ENV,
            )


def test_it_refuses_unknown_slots_and_non_releases(tmp_path: Path) -> None:
    with pytest.raises(SlotError, match="slot must be one of"):
        slot_status(environment="staging", slot="purple")
    with pytest.raises(SlotError, match="not a Swedify release"):
        slot_start(
            environment="staging", slot="blue", port=free_port(), version="1", source_dir=tmp_path
        )
