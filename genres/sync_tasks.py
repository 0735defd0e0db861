"""Celery tasks of auto-sync (genres.sync, genres.sync_runner).

``sync_run`` drives one listener's run: it advances the run and, while the run waits for its
scan or playlist job, polls again a little later (backing off). ``syncs_tick`` (the beat)
advances any run whose driver was lost and starts due runs into the free slots (at most
``SYNC_MAX_CONCURRENT_RUNS`` scheduled runs at a time); a run's driver starts the next due runs
as its run ends, so the tick is only the safety net. Both are idempotent:
a run is advanced under a lease on its schedule row (compare-and-set), so duplicates are
harmless.
"""

from __future__ import annotations

from celery import Task, shared_task

from genres.sync import SYNC_RUN_TASK
from genres.sync_runner import (
    SYNC_BUSY,
    SYNC_DONE,
    SYNC_WAITING,
    sync_advance,
    syncs_start_due,
    syncs_tick,
)

SYNC_TICK_TASK = "genres.sync_tasks.syncs_tick"
# A waiting run is polled after 2 s, then less often, at most every SYNC_POLL_MAX_SECONDS;
# after SYNC_POLLS polls (about an hour and a half) the beat's tick takes it over.
SYNC_POLL_FIRST_SECONDS = 2
SYNC_POLL_MAX_SECONDS = 30
SYNC_POLLS = 200


def poll_countdown(retries: int) -> int:
    """Seconds before the next poll of a waiting run: 2, 4, 8, 16, then 30."""
    return min(SYNC_POLL_MAX_SECONDS, SYNC_POLL_FIRST_SECONDS * 2 ** min(retries, 5))


@shared_task(name=SYNC_RUN_TASK, bind=True, ignore_result=True, max_retries=SYNC_POLLS)
def sync_run(self: Task, user_id: str) -> str:
    """Advance one listener's run; poll again while it waits."""
    outcome = sync_advance(user_id=int(user_id))
    if outcome == SYNC_DONE:
        # The run's slot is free: the next due run starts now, not at the next tick.
        syncs_start_due()
    if outcome in (SYNC_WAITING, SYNC_BUSY) and self.request.retries < SYNC_POLLS:
        raise self.retry(countdown=poll_countdown(self.request.retries))
    return outcome


@shared_task(name=SYNC_TICK_TASK, ignore_result=True)
def sync_tick() -> dict[str, int]:
    """Every few minutes (CELERY_BEAT_SCHEDULE): start due runs, advance lost ones."""
    return syncs_tick()
