"""Fair use of worker processes, unit level: when a job yields its worker (slices and
priority), what counts as waiting work, the gate that stops a slice's new requests, and the
yield tokens that make a duplicate delivery of a yielded job's message harmless."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from genres import jobs, playlists, scans, tasks
from genres.jobs import (
    BACKGROUND_YIELD_DELAY,
    RUN_NOT_CLAIMED,
    JobSlice,
    SliceEnd,
    SliceGate,
    waiting_work,
    yield_claim,
)
from genres.models import PlaylistJob, Scan, SpotifyAccount

pytestmark = pytest.mark.django_db


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Waiting:
    """A stand-in for waiting_work: which priorities have work waiting, and how often asked."""

    def __init__(self, *, interactive: bool = False, background: bool = False) -> None:
        self.interactive = interactive
        self.background = background
        self.asked = 0

    def __call__(self, *, user_id: int, background: bool, service: int | None = None) -> bool:
        self.asked += 1
        return self.interactive or (background and self.background)


def a_slice(waiting: Waiting, clock: Clock, *, background: bool = False) -> JobSlice:
    return JobSlice(user_id=1, background=background, seconds=10, clock=clock, waiting=waiting)


def test_an_interactive_job_runs_its_whole_slice_even_when_others_wait():
    clock, waiting = Clock(), Waiting(interactive=True)
    running = a_slice(waiting, clock)

    clock.now += 9.5
    assert not running.over()
    assert waiting.asked == 0  # no database look before the slice is used up


def test_an_interactive_job_yields_after_its_slice_when_interactive_work_waits():
    clock, waiting = Clock(), Waiting(interactive=True)
    running = a_slice(waiting, clock)

    clock.now += 10
    assert running.over()
    assert running.delay is None  # back at the end of the queue at once
    assert running.over()  # stays over


def test_an_interactive_job_goes_on_while_nothing_or_only_background_work_waits():
    clock, waiting = Clock(), Waiting(background=True)
    running = a_slice(waiting, clock)

    clock.now += 60
    assert not running.over()
    waiting.interactive = True
    clock.now += jobs.WAITING_CHECK_EVERY
    assert running.over()


def test_a_background_job_yields_at_once_when_interactive_work_waits_and_comes_back_later():
    clock, waiting = Clock(), Waiting()
    running = a_slice(waiting, clock, background=True)

    assert not running.over()
    waiting.interactive = True
    clock.now += jobs.WAITING_CHECK_EVERY
    assert running.over()
    assert running.delay == BACKGROUND_YIELD_DELAY


def test_a_background_job_yields_to_other_background_work_only_after_its_slice():
    clock, waiting = Clock(), Waiting(background=True)
    running = a_slice(waiting, clock, background=True)

    clock.now += 5
    assert not running.over()
    clock.now += 5
    assert running.over()
    assert running.delay is None


class WaitingScan:
    """Another listener's scan waits, having made ``requests`` requests (least service)."""

    def __init__(self, requests: int) -> None:
        self.requests = requests

    def __call__(self, *, user_id: int, background: bool, service: int | None = None) -> bool:
        return service is None or self.requests < service


def test_a_job_yields_early_to_much_smaller_work_and_at_its_slice_end_to_smaller_work():
    clock = Clock()
    small = JobSlice(user_id=1, background=False, seconds=10, clock=clock,
                     waiting=WaitingScan(10), service=lambda: 100)  # fmt: skip
    similar = JobSlice(user_id=1, background=False, seconds=10, clock=clock,
                       waiting=WaitingScan(60), service=lambda: 100)  # fmt: skip

    clock.now += jobs.EARLY_YIELD_AFTER / 2
    assert not small.over()
    clock.now += jobs.EARLY_YIELD_AFTER
    assert small.over()  # a tenth of its service: about a second, not a slice
    assert not similar.over()
    clock.now += 10
    assert similar.over()


def test_a_job_never_yields_to_work_that_has_had_more_service():
    clock = Clock()
    running = JobSlice(user_id=1, background=False, seconds=10, clock=clock,
                       waiting=WaitingScan(500), service=lambda: 100)  # fmt: skip

    clock.now += 60
    assert not running.over()


def test_the_job_rows_are_read_at_most_once_per_check_interval():
    clock, waiting = Clock(), Waiting()
    running = a_slice(waiting, clock)
    clock.now += 10

    for _ in range(50):
        running.over()
        clock.now += jobs.WAITING_CHECK_EVERY / 10

    assert waiting.asked == 5


def test_a_closed_gate_refuses_new_requests_and_passes_tokens_until_then():
    class Tokens:
        def access_token(self) -> str:
            return "token"

        def force_refresh(self) -> str:
            return "fresh"

    gate = SliceGate(Tokens())
    assert gate.access_token() == "token"

    gate.close()

    with pytest.raises(SliceEnd):
        gate.access_token()
    assert gate.force_refresh() == "fresh"  # a request already under way may still refresh


# --- What waits, read from the job rows --------------------------------------------------------


def listener(name: str) -> Any:
    user = get_user_model().objects.create_user(f"spotify:{name}")
    SpotifyAccount.objects.create(user=user, spotify_id=name)
    return user


def test_queued_and_due_yielded_jobs_of_other_listeners_are_waiting_work():
    me, other = listener("me"), listener("other")
    Scan.objects.create(user=me, sources=["liked"])  # my own: never a reason to yield
    assert not waiting_work(user_id=me.pk, background=False)

    later = timezone.now() + timedelta(seconds=30)
    yielded = Scan.objects.create(
        user=other, status=Scan.Status.RUNNING, claimed_by=yield_claim("t1"), heartbeat_at=later
    )
    assert not waiting_work(user_id=me.pk, background=False)  # waits for the budget, not us

    Scan.objects.filter(pk=yielded.pk).update(heartbeat_at=timezone.now())
    assert waiting_work(user_id=me.pk, background=False)

    Scan.objects.filter(pk=yielded.pk).update(claimed_by="host:1:abc")  # a worker holds it
    assert not waiting_work(user_id=me.pk, background=False)


def test_a_playlist_job_waiting_for_its_listeners_running_one_is_not_waiting_work():
    me, other = listener("me"), listener("other")
    PlaylistJob.objects.create(
        user=other, genres=["pop"], status=PlaylistJob.Status.RUNNING, heartbeat_at=timezone.now()
    )
    PlaylistJob.objects.create(user=other, genres=["rock"])  # queued behind it

    assert not waiting_work(user_id=me.pk, background=False)


def test_a_paused_scan_whose_time_has_come_waits_for_a_worker_too():
    me, other = listener("me"), listener("other")
    paused = Scan.objects.create(
        user=other, status=Scan.Status.PAUSED, resume_at=timezone.now() + timedelta(seconds=30)
    )
    assert not waiting_work(user_id=me.pk, background=False)

    Scan.objects.filter(pk=paused.pk).update(resume_at=timezone.now())
    assert waiting_work(user_id=me.pk, background=False)


def test_sync_work_waiting_makes_only_background_jobs_yield():
    me, other = listener("me"), listener("other")
    PlaylistJob.objects.create(user=other, genres=["pop"], origin="sync")

    assert not waiting_work(user_id=me.pk, background=False)
    assert waiting_work(user_id=me.pk, background=True)

    PlaylistJob.objects.create(user=listener("third"), genres=["pop"])
    assert waiting_work(user_id=me.pk, background=False)


def test_only_scans_that_have_had_less_service_make_a_scan_yield():
    me, other = listener("me"), listener("other")
    yielded = Scan.objects.create(
        user=other,
        status=Scan.Status.RUNNING,
        claimed_by=yield_claim("t1"),
        heartbeat_at=timezone.now(),
        requests_made=40,
    )

    assert not waiting_work(user_id=me.pk, background=False, service=25)
    assert not waiting_work(user_id=me.pk, background=False, service=40)
    assert waiting_work(user_id=me.pk, background=False, service=41)
    Scan.objects.filter(pk=yielded.pk).update(status=Scan.Status.QUEUED, requests_made=0)
    assert waiting_work(user_id=me.pk, background=False, service=1)  # a new scan
    PlaylistJob.objects.create(user=listener("third"), genres=["pop"])
    assert waiting_work(user_id=me.pk, background=False, service=0)  # no count: it counts


# --- Yield tokens: a duplicate delivery does no harm ---------------------------------------------


@pytest.fixture
def sent(monkeypatch: Any, transactional_db: Any) -> list[dict[str, Any]]:
    """Messages the services queue (nothing reaches a broker). They are sent on commit, so
    these tests run without a surrounding transaction."""
    messages: list[dict[str, Any]] = []

    def record(**message: Any) -> None:
        messages.append(message)

    monkeypatch.setattr(scans, "job_enqueue", record)
    monkeypatch.setattr(playlists, "job_enqueue", record)
    monkeypatch.setattr(tasks.scan_run, "delay", lambda scan_id: messages.append({"id": scan_id}))
    return messages


def yielded_scan(sent: list[dict[str, Any]], *, delay: float = 0.0) -> tuple[Scan, str]:
    scan = Scan.objects.create(user=listener("alice"), sources=["liked"])
    assert scans.scan_claim(scan_id=scan.pk, worker="w1") is not None
    assert scans.scan_yield(scan_id=scan.pk, worker="w1", delay=delay)
    return Scan.objects.get(pk=scan.pk), sent[-1]["token"]


def test_a_yielded_scan_stays_running_and_queues_its_next_slice_with_a_new_token(sent):
    scan, token = yielded_scan(sent)

    assert scan.status == Scan.Status.RUNNING  # the page keeps showing it at work
    assert scan.claimed_by == yield_claim(token)
    assert sent == [
        {
            "task_name": scans.SCAN_RUN_TASK,
            "job_id": scan.pk,
            "label": "scan",
            "token": token,
            "countdown": None,
        }
    ]


def test_only_the_message_with_the_current_token_takes_a_yielded_scan_back(sent):
    scan, token = yielded_scan(sent)

    assert scans.scan_claim(scan_id=scan.pk, worker="w2") is None
    assert scans.scan_claim(scan_id=scan.pk, worker="w2", token="stale") is None
    taken = scans.scan_claim(scan_id=scan.pk, worker="w2", token=token)

    assert taken is not None
    assert taken.claimed_by == "w2"
    assert taken.attempts == 1  # a slice, not a new attempt
    assert scans.scan_claim(scan_id=scan.pk, worker="w3", token=token) is None


def test_a_duplicate_delivery_of_a_yielded_scans_message_changes_nothing(sent):
    scan, token = yielded_scan(sent)
    assert scans.scan_claim(scan_id=scan.pk, worker="w2", token=token) is not None
    assert scans.scan_yield(scan_id=scan.pk, worker="w2")  # the next slice yields again
    before = Scan.objects.filter(pk=scan.pk).values().get()
    messages = len(sent)

    # The first message delivered once more (a broker redelivery, a retry):
    assert tasks.scan_run(str(scan.pk), token) == RUN_NOT_CLAIMED

    assert Scan.objects.filter(pk=scan.pk).values().get() == before
    assert len(sent) == messages  # and it queued nothing: messages never multiply


def test_a_scan_waiting_for_the_budget_is_not_taken_back_before_its_wait_is_over(sent):
    scan, token = yielded_scan(sent, delay=20)

    assert sent[-1]["countdown"] == pytest.approx(20 + scans.DUE_MARGIN_SECONDS)
    assert scans.scan_claim(scan_id=scan.pk, worker="w2", token=token) is None
    later = timezone.now() + timedelta(seconds=21)
    assert scans.scan_claim(scan_id=scan.pk, worker="w2", token=token, now=later) is not None


def test_a_yielded_scan_whose_message_was_lost_is_recovered(sent):
    scan, _token = yielded_scan(sent)
    assert scans.scans_due_for_recovery() == []

    stale = timezone.now() - jobs.HEARTBEAT_STALE - timedelta(seconds=1)
    Scan.objects.filter(pk=scan.pk).update(heartbeat_at=stale)

    assert scans.scans_due_for_recovery() == [str(scan.pk)]
    assert scans.scan_claim(scan_id=scan.pk, worker="w2") is not None


def test_a_short_pause_is_resumed_by_a_delayed_message_and_a_long_one_by_recovery(sent):
    short = Scan.objects.create(user=listener("short"), sources=["liked"])
    long = Scan.objects.create(user=listener("long"), sources=["liked"])
    for scan in (short, long):
        assert scans.scan_claim(scan_id=scan.pk, worker="w1") is not None
    now = timezone.now()

    scans.scan_pause(scan_id=short.pk, worker="w1", resume_at=now + timedelta(seconds=8), error={})
    scans.scan_pause(scan_id=long.pk, worker="w1", resume_at=now + timedelta(hours=9), error={})

    assert [(m["job_id"], m["token"]) for m in sent] == [(short.pk, "")]
    assert 8 <= sent[0]["countdown"] <= 8 + scans.DUE_MARGIN_SECONDS


def test_a_yielded_playlist_job_is_taken_back_only_with_its_token(sent):
    user = listener("bob")
    job = PlaylistJob.objects.create(user=user, genres=["pop"])
    job_id = str(job.pk)
    from genres.playlist_runner import _claim

    assert _claim(job_id, "w1") == jobs.RUN_FINISHED
    assert playlists.playlist_job_yield(job_id=job.pk, worker="w1")
    token = sent[-1]["token"]

    assert PlaylistJob.objects.get(pk=job.pk).status == PlaylistJob.Status.RUNNING
    assert _claim(job_id, "w2") == RUN_NOT_CLAIMED
    assert _claim(job_id, "w2", token) == jobs.RUN_FINISHED
    assert _claim(job_id, "w3", token) == RUN_NOT_CLAIMED
