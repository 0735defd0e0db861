"""The auto-sync case of the budget benchmark: 1,000 listeners with auto-sync on and nothing
new, one cycle, and an interactive scan started in the middle of it.

Setting up 1,000 listeners the slow way (a sign-in, a full scan and a playlist job each) would
take longer than the cycle. Instead one *template* listener goes the whole real way through
the workers - a scan, genre playlists for its biggest genres, auto-sync turned on and one
run - and the others are its copies: sandbox users with the same library seed (so Spotify
holds exactly the same liked songs for each), Swedify users and accounts created in bulk
with tokens the sandbox issued, and every row the template's real runs left (scans, results,
library rows, genre playlists, the sync schedule) copied with the user changed. So each copy
is a listener whose last run saw everything, as after a real one.

The cycle is one tick of auto-sync's beat entry (the task ``CELERY_BEAT_SCHEDULE`` names),
sent when every schedule is due; a listener is synced when its schedule has a ``last_run_at``
after the tick. The benchmark watches the cycle for at most ``cycle_limit`` seconds (a cycle of
1,000 takes minutes on a 2-core machine) and counts the calls of the listeners synced by then,
exactly per listener: the sandbox's request log is read while the cycle runs (``LogTail``).
The interactive scan (a listener's own, cold) is timed from its row; its fair share is twice
the time the same kind of scan takes with the workers idle (two parties, the listener and the
cycle, share the workers and the window) plus ``pickup_seconds`` for a worker to come free.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from benchmarks.harness import Target
from benchmarks.listeners import Listener, listener_create, listener_make, scan_begin

LIBRARY_SEED = "bench-sync-library"
LOG_TAIL_SECONDS = 1.0
LOG_TAIL_LIMIT = 2000
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class SyncCase:
    listeners: int = 1_000
    # The template's library and how many genre playlists it has Swedify make.
    songs: int = 60
    playlists: int = 3
    # Budget of this case (Swedify's SPOTIFY_RATE_LIMIT and the sandbox's window per 30 s):
    # high enough that a cycle of up to 3 calls per listener fits the benchmark's minutes,
    # still one window every worker shares.
    rate_limit: int = 1_500
    latency_ms: int = 10
    workers: int = 2
    max_calls_per_listener: float = 3.0
    interactive_songs: int = 150
    pickup_seconds: float = 5.0
    # Time box: the interactive scan starts when half the listeners are synced or this long
    # after the tick, whichever comes first; the benchmark stops watching the cycle this long
    # after the tick. Calls per listener count the listeners synced by then (at least
    # ``min_synced`` of them): on this 2-core machine a cycle of 1,000 takes minutes.
    interactive_after: float = 45.0
    cycle_limit: float = 120.0
    min_synced: int = 20
    offset: int = 900_000

    def tiny(self) -> SyncCase:
        return replace(
            self,
            listeners=12,
            songs=20,
            interactive_songs=20,
            interactive_after=5.0,
            cycle_limit=60.0,
        )


class SyncUnavailable(RuntimeError):
    """Auto-sync is not (yet) in the system under test."""


def beat_task_name() -> str:
    """The task auto-sync's beat entry sends each tick."""
    from django.conf import settings

    for entry in getattr(settings, "CELERY_BEAT_SCHEDULE", {}).values():
        task = str(entry.get("task", ""))
        if task.startswith("genres.sync"):
            return task
    raise SyncUnavailable("CELERY_BEAT_SCHEDULE has no auto-sync entry (genres.sync*)")


def cycle_tick() -> None:
    """What the beat does at an auto-sync tick: queue its task."""
    from swedify.celery import app

    app.send_task(beat_task_name())


class LogTail:
    """Reads the sandbox's request log (its last LOG_TAIL_LIMIT entries) every second while it
    runs and keeps each entry once, so calls can be attributed to users beyond the log's size.
    ``complete`` tells whether the log ever moved on by more than it holds between reads."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.seen: set[tuple[Any, ...]] = set()
        self.by_user: Counter[str] = Counter()
        self.routes: Counter[str] = Counter()
        self.users_routes: dict[str, Counter[str]] = {}
        self.complete = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-tail", daemon=True)

    def __enter__(self) -> LogTail:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.read()

    def _run(self) -> None:
        while not self._stop.wait(LOG_TAIL_SECONDS):
            self.read()

    def read(self) -> None:
        entries = self.sandbox.requests(LOG_TAIL_LIMIT)
        fresh = 0
        for entry in entries:
            key = (
                entry["time"], entry["method"], entry["path"], entry["user"], entry["status"],
                entry["duration_ms"],
            )  # fmt: skip
            if key in self.seen or not entry["route"]:
                continue
            self.seen.add(key)
            fresh += 1
            if entry["group"] != "accounts":  # token refreshes are not Web API calls
                user = entry["user"] or "?"
                route = f"{entry['method']} {entry['route']}"
                self.by_user[user] += 1
                self.routes[route] += 1
                self.users_routes.setdefault(user, Counter())[route] += 1
        if self.seen and fresh >= len(entries) >= LOG_TAIL_LIMIT:
            self.complete = False  # every entry was new: some may have gone unread


def _wait(label: str, done: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{label}: not done within {timeout:g} s")
        time.sleep(POLL_SECONDS)


def playlists_make(user: Any, count: int, timeout: float) -> None:
    """A real playlist job for the listener's ``count`` biggest genres, run by the workers."""
    from genres import playlists, selectors
    from genres.models import PlaylistJob

    payload = selectors.genres_payload(user=user)
    genres = [genre["name"] for genre in payload["genres"][:count]]
    job = playlists.playlist_job_start(user=user, genres=genres)
    finished = {"succeeded", "partial", "failed"}

    def ended() -> bool:
        return PlaylistJob.objects.get(pk=job.pk).status in finished

    _wait("the template's playlist job", ended, timeout)
    status = PlaylistJob.objects.get(pk=job.pk).status
    if status != "succeeded":
        raise RuntimeError(f"the template's playlist job ended {status}")


def schedules_due(user_ids: Sequence[int]) -> None:
    """Every listener's auto-sync on and due now (as when the beat finds them due)."""
    from django.utils import timezone

    from genres.models import SyncSchedule

    SyncSchedule.objects.filter(user_id__in=list(user_ids)).update(
        enabled=True, next_run_at=timezone.now() - timedelta(seconds=1), running_since=None
    )


def synced_since(user_ids: Sequence[int], since: Any) -> int:
    from genres.models import SyncSchedule

    return SyncSchedule.objects.filter(
        user_id__in=list(user_ids), last_run_at__gte=since, running_since__isnull=True
    ).count()


def template_make(sandbox: Any, case: SyncCase, timeout: float) -> Any:
    """The template listener, through the real system: scan, playlists, auto-sync on, one run."""
    from django.utils import timezone

    from benchmarks.stack import scans_wait
    from genres import sync as sync_services

    user = listener_create(sandbox, _spec("sync-0", case))
    listener = Listener("sync-0", user, case.songs, sandbox.truth("sync-0"))
    scan_begin(listener)
    run = scans_wait([listener.scan_id], timeout=timeout)[listener.scan_id]
    if run.status != "succeeded":
        raise RuntimeError(f"the template's scan ended {run.status}")
    playlists_make(user, case.playlists, timeout)
    sync_services.sync_update(user=user, enabled=True)
    schedules_due([user.pk])
    since = timezone.now()
    cycle_tick()
    _wait("the template's first sync run", lambda: synced_since([user.pk], since) == 1, timeout)
    return user


def _spec(spotify_id: str, case: SyncCase) -> dict[str, Any]:
    return {
        "id": spotify_id,
        "tracks": case.songs,
        "artists": max(1, round(case.songs * 0.3)),
        "artist_offset": case.offset,
        "followed_fraction": 0.0,
        "top_fraction": 0.0,
        "seed": LIBRARY_SEED,
    }


def listeners_copy(sandbox: Any, template: Any, case: SyncCase) -> list[int]:
    """``case.listeners - 1`` copies of the template listener (module docstring); their ids."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.utils import timezone

    from genres.crypto import encrypt_token
    from genres.models import SpotifyAccount

    ids = [f"sync-{n}" for n in range(1, case.listeners)]
    for start in range(0, len(ids), 200):
        sandbox.control("POST", "users", [_spec(i, case) for i in ids[start : start + 200]])
    User = get_user_model()
    users = User.objects.bulk_create(
        [User(username=f"spotify:{i}", password=make_password(None)) for i in ids],
        batch_size=500,
    )
    if any(user.pk is None for user in users):  # backends that do not return ids
        users = list(User.objects.filter(username__in=[f"spotify:{i}" for i in ids]))
    by_name = {user.username: user for user in users}
    template_account = SpotifyAccount.objects.get(user_id=template.pk)
    accounts = []
    for spotify_id in ids:
        answer = sandbox.issue_token(spotify_id)
        accounts.append(
            SpotifyAccount(
                user=by_name[f"spotify:{spotify_id}"],
                spotify_id=spotify_id,
                display_name=spotify_id,
                access_token_encrypted=encrypt_token(answer["access_token"]),
                refresh_token_encrypted=encrypt_token(answer["refresh_token"]),
                token_expires_at=timezone.now()
                + timedelta(seconds=float(answer.get("expires_in", 3600))),
                scopes=answer.get("scope", ""),
                artists_harvested_at=template_account.artists_harvested_at,
            )
        )
    SpotifyAccount.objects.bulk_create(accounts, batch_size=500)
    user_ids = [by_name[f"spotify:{i}"].pk for i in ids]
    rows_copy(template.pk, user_ids)
    return user_ids


def _user_models() -> list[Any]:
    """The listener-side models with a ``user`` foreign key (the account aside), each after
    the models its other foreign keys point at."""
    from django.apps import apps
    from django.contrib.auth import get_user_model

    from genres.models import SpotifyAccount

    found = []
    for model in apps.get_app_config("genres").get_models():
        field = next((f for f in model._meta.concrete_fields if f.name == "user"), None)
        if model is not SpotifyAccount and field and field.related_model is get_user_model():
            found.append(model)
    ordered: list[Any] = []
    while found:
        for model in found:
            targets = {f.related_model for f in model._meta.concrete_fields if f.is_relation} & set(
                found
            )
            if targets <= {model}:
                ordered.append(model)
                found.remove(model)
                break
        else:
            ordered += found  # a cycle: copy in any order, links between them as they are
            break
    return ordered


def rows_copy(template_id: int, user_ids: Sequence[int]) -> None:
    """Every row of the template listener, once per listener of ``user_ids``, with the user
    changed, new primary keys, and links between copied rows pointing at the copies."""
    mapping: dict[tuple[Any, Any, int], Any] = {}
    for model in _user_models():
        rows = list(model.objects.filter(user_id=template_id))
        if not rows:
            continue
        pk = model._meta.pk
        links = [
            f
            for f in model._meta.concrete_fields
            if f.is_relation and f.name != "user" and f.related_model is not None
        ]
        copies = []
        for user_id in user_ids:
            for row in rows:
                copy = model(
                    **{f.attname: getattr(row, f.attname) for f in model._meta.concrete_fields}
                )
                copy.user_id = user_id
                if pk.get_internal_type() == "UUIDField":
                    setattr(copy, pk.attname, uuid.uuid4())
                else:
                    setattr(copy, pk.attname, None)
                for link in links:
                    old = getattr(row, link.attname)
                    key = (link.related_model, old, user_id)
                    if old is not None and key in mapping:
                        setattr(copy, link.attname, mapping[key])
                copies.append((row, user_id, copy))
        model.objects.bulk_create([c for _, _, c in copies], batch_size=1000)
        for row, user_id, copy in copies:
            if copy.pk is not None:
                mapping[(model, row.pk, user_id)] = copy.pk


def interactive_scan(sandbox: Any, name: str, case: SyncCase, offset: int) -> Any:
    """A cold listener of its own library, ready to scan."""
    return listener_make(sandbox, name, case.interactive_songs, offset)


def case_sync(stack: Any, case: SyncCase = SyncCase()) -> list[Target]:
    """1,000 listeners with auto-sync on and nothing new; one cycle's calls; an interactive
    scan in the middle of it against its fair share."""
    from django.utils import timezone

    from benchmarks.stack import scans_wait

    sandbox = stack.sandbox
    try:
        beat_task_name()  # no auto-sync: say so before setting anything up
    except SyncUnavailable as error:
        missing = f"auto-sync not in the system under test: {error}"
        return [
            Target(
                "auto-sync cycle: calls per listener",
                missing,
                f"≤ {case.max_calls_per_listener:g}",
                "n/a",
                False,
            ),
            Target("interactive scan started mid-cycle", missing, "fair share", "n/a", False),
        ]
    stack.fresh(faults={"rate_limit": case.rate_limit, "latency_ms": case.latency_ms})
    setup = time.perf_counter()
    with stack.workers("sync", concurrency=case.workers, rate_limit=case.rate_limit) as workers:
        try:
            template = template_make(sandbox, case, timeout=120)
            alone_listener = interactive_scan(sandbox, "sync-alone", case, case.offset + 20_000)
            scan_begin(alone_listener)
            alone = scans_wait([alone_listener.scan_id], timeout=120)[alone_listener.scan_id]
            user_ids = [template.pk, *listeners_copy(sandbox, template, case)]
            during_listener = interactive_scan(sandbox, "sync-during", case, case.offset + 40_000)
            setup = time.perf_counter() - setup
            schedules_due(user_ids)
            sandbox.reset_stats()
            since = timezone.now()
            ticked = time.monotonic()
            with LogTail(sandbox) as tail:
                cycle_tick()
                # Mid-cycle: half the listeners synced, or the cycle has run a while with
                # work still queued (on a slow machine half the cycle takes minutes).
                while synced_since(user_ids, since) < len(user_ids) // 2:
                    if time.monotonic() - ticked > case.interactive_after:
                        break
                    time.sleep(POLL_SECONDS)
                synced_before = synced_since(user_ids, since)
                scan_begin(during_listener)
                during = scans_wait([during_listener.scan_id], timeout=case.cycle_limit)[
                    during_listener.scan_id
                ]
                while synced_since(user_ids, since) < len(user_ids):
                    if time.monotonic() - ticked > case.cycle_limit:
                        break
                    time.sleep(POLL_SECONDS)
                cycle = Cycle(
                    listeners=len(user_ids),
                    synced=synced_spotify_ids(user_ids, since),
                    seconds=(timezone.now() - since).total_seconds(),
                    synced_before_interactive=synced_before,
                    stats=sandbox.stats(),
                    scans=sync_scans(since),
                )
        except Exception:
            print(workers.log_tail(60), flush=True)
            raise
    sandbox.clear_faults()
    return sync_targets(case, cycle, tail, alone, during, setup)


@dataclass
class Cycle:
    """What one auto-sync cycle did by the time the benchmark stopped watching it."""

    listeners: int
    synced: set[str]  # sandbox ids of the listeners whose run ended after the tick
    seconds: float
    synced_before_interactive: int
    stats: dict[str, Any]
    # The cycle's scans: how many in each status, and over how many seconds after the tick
    # they were created (how long the tick took to start every run).
    scans: dict[str, Any]


def sync_scans(since: Any) -> dict[str, Any]:
    from django.db.models import Count, Max

    from genres.models import JobOrigin, Scan

    rows = Scan.objects.filter(origin=JobOrigin.SYNC, created_at__gte=since)
    last = rows.aggregate(last=Max("created_at"))["last"]
    by_status = dict(rows.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    return {
        "by_status": by_status,
        "created_over": (last - since).total_seconds() if last else 0.0,
    }


def synced_spotify_ids(user_ids: Sequence[int], since: Any) -> set[str]:
    from genres.models import SpotifyAccount, SyncSchedule

    done = SyncSchedule.objects.filter(
        user_id__in=list(user_ids), last_run_at__gte=since, running_since__isnull=True
    ).values("user_id")
    return set(SpotifyAccount.objects.filter(user_id__in=done).values_list("spotify_id", flat=True))


def sync_targets(
    case: SyncCase, cycle: Cycle, tail: LogTail, alone: Any, during: Any, setup: float
) -> list[Target]:
    """Calls per listener over the listeners whose run ended (from the request log: exact per
    listener, so runs still going when the time box ended do not count half), and the
    interactive scan against its fair share."""
    synced = len(cycle.synced)
    calls = sum(tail.by_user.get(spotify_id, 0) for spotify_id in cycle.synced)
    per_listener = calls / synced if synced else float("inf")
    routes: Counter[str] = Counter()
    for spotify_id in cycle.synced:
        routes.update(tail.users_routes.get(spotify_id, Counter()))
    worst = max((tail.by_user.get(i, 0) for i in cycle.synced), default=0)
    interactive_calls = tail.by_user.get("sync-during", 0)
    pace = synced / cycle.seconds if cycle.seconds else 0.0
    print(
        f"  setup (template run for real, {cycle.listeners - 1} copies) {setup:.0f} s; "
        f"{synced} of {cycle.listeners} listeners synced in {cycle.seconds:.0f} s "
        f"({pace:.1f} a second); their calls by route: "
        + ", ".join(f"{route} {count}" for route, count in routes.most_common(6))
        + f"; most calls of one listener {worst}; the cycle's scans created over "
        f"{cycle.scans['created_over']:.0f} s after the tick, by status at the end "
        f"{cycle.scans['by_status']}; all calls in the cycle "
        f"{cycle.stats['total']} ({cycle.stats['too_many_requests']} answered 429); request "
        f"log read {'completely' if tail.complete else 'with gaps'}",
        flush=True,
    )
    if alone.seconds is None or alone.status != "succeeded":
        raise RuntimeError(f"the interactive scan with the workers idle ended {alone.status}")
    fair = 2 * alone.seconds + case.pickup_seconds
    took = during.seconds
    whole = (
        "the whole cycle"
        if synced == cycle.listeners
        else f"stopped watching at {case.cycle_limit:g} s"
    )
    return [
        Target(
            f"auto-sync cycle, {cycle.listeners:,} listeners, nothing new: calls per listener",
            f"{per_listener:.2f} ({calls:,} calls of {synced:,} listeners synced in "
            f"{cycle.seconds:.0f} s, {whole}; most of one listener {worst})",
            f"≤ {case.max_calls_per_listener:g}",
            f"{per_listener / case.max_calls_per_listener:.2f} x target",
            tail.complete
            and synced >= min(cycle.listeners, case.min_synced)
            and per_listener <= case.max_calls_per_listener,
        ),
        Target(
            f"interactive scan ({case.interactive_songs} songs) started mid-cycle "
            f"({cycle.synced_before_interactive:,} of {cycle.listeners:,} synced)",
            ("not done" if took is None else f"{took:.1f} s ({interactive_calls} calls)")
            + (
                ""
                if during.queued_seconds is None
                else f", first {during.queued_seconds:.1f} s queued"
            )
            + f"; alone {alone.seconds:.1f} s",
            f"≤ fair share 2 x {alone.seconds:.1f} + {case.pickup_seconds:g} s = {fair:.1f} s",
            "n/a" if took is None else f"{took / fair:.2f} x fair share",
            during.status == "succeeded" and took is not None and took <= fair,
        ),
    ]
