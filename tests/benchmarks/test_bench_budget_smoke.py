"""The budget benchmark's machinery on tiny inputs, so it cannot rot unnoticed: its figures
(the least time a rolling window allows, where calls went), the worker command line taken
from scripts/run, the rows copied for the auto-sync listeners, and a tiny run of the cases
end to end (real Celery workers, a Redis of its own, the sandbox in its own process) that
must print every table. The tiny run's figures mean nothing; the benchmark's targets are
checked by ``make bench``, not here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest

from benchmarks import budget, stack, sync

REPO = Path(__file__).resolve().parents[2]
# Each case starts workers of its own (5-10 s on a busy machine) and the auto-sync case runs a
# template listener for real before its cycle: about 30 s on a quiet machine, a minute under
# load. The single-listener case is left out: it runs the four-listener case's functions.
# Bounded, so a hang fails instead of blocking the suite.
TINY_CASES = ("four", "sync")
TINY_RUN_TIMEOUT = 300


def test_the_window_floor_is_the_rolling_windows_least_time():
    # 250 requests at once, 100 per 30 s: 100 at 0 s, 100 at 30 s, 50 at 60 s.
    assert budget.window_floor([(0.0, 250)], 100, 30) == 60
    # Everything fits in one window: the last request is ready at 35 s and goes then.
    assert budget.window_floor([(0.0, 50), (35.0, 20)], 100, 30) == 35
    # The four-listener shape: the late 68 fill the slots freed at 60 s and 90 s.
    assert budget.window_floor([(0.0, 250), (35.0, 68)], 100, 30) == 90
    assert budget.window_floor([(0.0, 53)], 15, 10) == 30
    assert budget.window_floor([], 15, 10) == 0


def test_calls_and_429s_are_attributed_to_their_listeners_and_times():
    log = [
        {"time": "2026-12-03T12:00:00.100Z", "status": 200, "user": "a"},
        {"time": "2026-12-03T12:00:01.000Z", "status": 429, "user": "a"},
        {"time": "2026-12-03T12:00:06.000Z", "status": 200, "user": "b"},
        {"time": "2026-12-03T12:00:07.000Z", "status": 404, "user": "b"},
    ]
    zero = budget.log_seconds(log[0]) - 0.1

    counts = budget.calls_by_user(log)

    assert counts["a"] == Counter({"ok": 1, "429": 1})
    assert budget.calls_answered(counts["b"]) == 2
    lines = budget.timeline(log, zero)
    assert len(lines) == 2
    assert lines[0].split() == ["0-5", "s", "a", "1+1x429"]
    assert lines[1].split() == ["5-10", "s", "b", "2"]


def test_the_workers_consume_what_scripts_run_makes_them_consume():
    script = (
        'mkdir -p var/log\n'
        '# $BIN/celery -A swedify worker --concurrency 9\n'
        '$BIN/celery -A swedify worker --beat --concurrency 2 -Q interactive,background '
        '--loglevel INFO >var/log/worker.log 2>&1 &\n'
    )  # fmt: skip

    assert stack.run_script_worker_options(script) == ["--beat", "-Q", "interactive,background"]
    assert stack.run_script_worker_options("echo nothing\n") == []
    # Today's scripts/run has a worker line the benchmark reads.
    assert "--beat" in stack.run_script_worker_options()


def test_the_copied_rows_follow_their_links():
    from genres.models import GenrePlaylist, LibraryTrack, Scan, ScanResult, SyncSchedule

    order = sync._user_models()

    assert {Scan, ScanResult, LibraryTrack, GenrePlaylist, SyncSchedule} <= set(order)
    # A row is copied after the rows it points at, so its link can point at their copies.
    assert order.index(Scan) < order.index(ScanResult)
    assert order.index(Scan) < order.index(SyncSchedule)


@pytest.mark.django_db
def test_rows_copy_gives_each_listener_its_own_rows_linked_to_its_own_copies():
    from django.contrib.auth import get_user_model

    from genres.models import LibraryTrack, Scan, ScanResult

    User = get_user_model()
    template, first, second = (User.objects.create(username=f"copy-{n}") for n in range(3))
    scan = Scan.objects.create(user=template, status="succeeded", sources=["liked"])
    ScanResult.objects.create(scan=scan, user=template, total_tracks=2)
    for position, track in enumerate(("t1", "t2")):
        LibraryTrack.objects.create(
            user=template, track_id=track, source="liked", position=position
        )

    sync.rows_copy(template.pk, [first.pk, second.pk])

    for user in (first, second):
        copied = Scan.objects.get(user=user)
        assert copied.pk != scan.pk
        assert ScanResult.objects.get(user=user).scan_id == copied.pk
        tracks = LibraryTrack.objects.filter(user=user).order_by("position")
        assert [t.track_id for t in tracks] == ["t1", "t2"]
    assert Scan.objects.filter(user=template).get().pk == scan.pk


@pytest.mark.integration
def test_a_tiny_run_prints_the_tables_of_its_cases(tmp_path):
    env = {**os.environ, "SWEDIFY_DATA_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    database = f"swedify_bench_budget_test_{uuid.uuid4().hex[:8]}"
    command = [sys.executable, "-m", "benchmarks", "budget", "--tiny"]
    command += ["--cases", ",".join(TINY_CASES), "--database", database]
    answer = subprocess.run(
        command,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=TINY_RUN_TIMEOUT,
        check=False,
    )
    out = answer.stdout

    assert answer.returncode in (0, 1), answer.stderr[-3000:]
    for case in TINY_CASES:
        assert f"### {budget.CASE_TITLES[case]}" in out, out[-3000:]
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    assert "crashed" not in out, out[-3000:]
    assert all(line.rstrip().endswith(("| PASS |", "| FAIL |", "| result |")) for line in rows)
    assert len([row for row in rows if row.endswith(("PASS |", "FAIL |"))]) == 4 + 2
    # The sandbox counted real calls, every listener's result is checked against its truth.
    calls = re.search(r"\| calls answered 429 \| \d+ of (\d+)", out)
    assert calls
    assert int(calls.group(1)) > 0
    assert re.search(r"\| four listeners \(40/20/12/6 songs\): results \| \d of 4 equal", out)
    assert re.search(r"budget benchmark: (PASS|FAIL)", out)
