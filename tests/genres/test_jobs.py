"""Scans and playlist jobs are one kind of row to claim, keep alive and recover, and services
hand them to workers by task name, under the names running deployments have queued."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from celery import current_app
from django.contrib.auth import get_user_model
from django.utils import timezone

from genres import tasks
from genres.jobs import HEARTBEAT_STALE, QUEUED_STALE, job_enqueue
from genres.models import PlaylistJob, Scan
from genres.playlists import PLAYLIST_JOB_RUN_TASK
from genres.scans import SCAN_RUN_TASK

pytestmark = pytest.mark.django_db

MODELS = (Scan, PlaylistJob)


@pytest.fixture
def users():
    # Scans allow one active row per listener: each row gets a listener of its own.
    return [get_user_model().objects.create_user(f"spotify:u{n}") for n in range(5)]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_both_kinds_of_job_are_claimable_when_queued_or_their_worker_died(model, users):
    now = timezone.now()
    made = {}
    for user, (name, fields) in zip(
        users,
        [
            ("queued", {}),
            ("dead", {"status": "running", "heartbeat_at": now - HEARTBEAT_STALE * 2}),
            ("silent", {"status": "running", "heartbeat_at": None}),
            ("alive", {"status": "running", "heartbeat_at": now}),
            ("finished", {"status": "succeeded"}),
        ],
        strict=True,
    ):
        made[name] = model.objects.create(user=user, **fields)

    claimable = set(model.objects.claimable(now=now).values_list("pk", flat=True))

    assert claimable == {made[name].pk for name in ("queued", "dead", "silent")}
    assert set(model.objects.alive(now=now).values_list("pk", flat=True)) == {made["alive"].pk}


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_recovery_takes_dead_workers_and_lost_messages_of_both_kinds_of_job(model, users):
    now = timezone.now()
    model.objects.create(user=users[0])  # queued a moment ago: its message is on its way
    lost = model.objects.create(user=users[1])
    model.objects.filter(pk=lost.pk).update(created_at=now - QUEUED_STALE * 2)
    dead = model.objects.create(
        user=users[2], status="running", heartbeat_at=now - HEARTBEAT_STALE * 2
    )
    model.objects.create(user=users[3], status="running", heartbeat_at=now)  # alive

    due = set(model.objects.due_for_recovery(now=now).values_list("pk", flat=True))

    assert due == {lost.pk, dead.pk}


def test_a_paused_scan_is_claimable_once_its_resume_time_has_passed(users):
    now = timezone.now()
    later = Scan.objects.create(user=users[0], status="paused", resume_at=now + timedelta(hours=1))
    due = Scan.objects.create(user=users[1], status="paused", resume_at=now - timedelta(seconds=1))

    assert list(Scan.objects.claimable(now=now).values_list("pk", flat=True)) == [due.pk]
    assert list(Scan.objects.due_for_recovery(now=now).values_list("pk", flat=True)) == [due.pk]
    assert later.pk not in Scan.objects.claimable(now=now + timedelta(minutes=1)).values_list(
        "pk", flat=True
    )


def test_only_the_worker_holding_the_claim_owns_the_row(users):
    scan = Scan.objects.create(user=users[0], status="running", claimed_by="w1")

    assert Scan.objects.owned_by(pk=scan.pk, worker="w1").exists()
    assert not Scan.objects.owned_by(pk=scan.pk, worker="w2").exists()
    Scan.objects.filter(pk=scan.pk).update(status="paused")
    assert not Scan.objects.owned_by(pk=scan.pk, worker="w1").exists()


def test_the_task_names_are_the_ones_running_deployments_have_queued():
    assert SCAN_RUN_TASK == "genres.tasks.scan_run"
    assert PLAYLIST_JOB_RUN_TASK == "genres.tasks.playlist_job_run_task"
    assert tasks.scan_run.name == SCAN_RUN_TASK
    assert tasks.playlist_job_run_task.name == PLAYLIST_JOB_RUN_TASK
    assert tasks.jobs_recover.name == "genres.tasks.jobs_recover"
    registered = set(current_app.tasks)
    assert {SCAN_RUN_TASK, PLAYLIST_JOB_RUN_TASK, "genres.tasks.jobs_recover"} <= registered


def test_a_job_is_queued_through_the_task_registered_under_its_name(monkeypatch):
    queued: list[str] = []
    monkeypatch.setattr(tasks.scan_run, "delay", queued.append)

    job_enqueue(task_name=SCAN_RUN_TASK, job_id="0f6c", label="scan")

    assert queued == ["0f6c"]


def test_a_process_that_never_imported_the_task_sends_the_same_message_by_name(monkeypatch):
    sent: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(
        current_app, "send_task", lambda name, args: sent.append((name, list(args)))
    )

    job_enqueue(task_name="genres.tasks.not_imported_here", job_id="0f6c", label="scan")

    assert sent == [("genres.tasks.not_imported_here", ["0f6c"])]


def test_a_broker_that_refuses_the_message_is_logged_and_left_to_recovery(monkeypatch, caplog):
    def broker_down(job_id: str) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.playlist_job_run_task, "delay", broker_down)

    with caplog.at_level(logging.ERROR, logger="genres.jobs"):
        job_enqueue(task_name=PLAYLIST_JOB_RUN_TASK, job_id="0f6c", label="playlist job")

    assert "could not queue playlist job 0f6c; recovery will retry" in caplog.text
