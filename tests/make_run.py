"""Starting `make run` (scripts/run) from a test the way a terminal starts it."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import IO


def _as_from_a_terminal() -> None:
    # A shell ignores SIGINT and SIGQUIT in what it starts in the background (`make test &`),
    # and bash cannot trap a signal that was ignored when it started: the script's Ctrl-C
    # handling would never run. A terminal starts it with the defaults.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def make_run_start(*, repo: Path, env: dict[str, str], out: IO[str]) -> subprocess.Popen:
    """scripts/run in a session of its own, so a signal to its process group reaches what a
    terminal's Ctrl-C reaches."""
    return subprocess.Popen(
        ["scripts/run"],
        cwd=repo,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_as_from_a_terminal,
    )


def make_run_wait_until_running(script: subprocess.Popen, output: Path, *, timeout: float) -> None:
    """Waits for the script's "Swedify is running" line; fails with its output if it stops
    first or does not get there within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while "Swedify is running" not in output.read_text():
        assert script.poll() is None, output.read_text()
        assert time.monotonic() < deadline, output.read_text()
        time.sleep(0.5)
