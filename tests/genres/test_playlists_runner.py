"""The playlist job runner against an in-memory Spotify double (unit level: no HTTP).

The double keeps playlists and their items like Spotify does (no de-duplication of items), so
every "never twice" assertion checks what would really be on Spotify.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from genres import jobs, playlist_runner, playlists, spotify
from genres.jobs import RUN_BUSY, RUN_FINISHED, RUN_NOT_CLAIMED
from genres.models import GenrePlaylist, PlaylistJob, Scan, ScanResult, SpotifyAccount
from genres.playlist_runner import playlist_job_run
from genres.playlists import playlist_job_json, playlist_job_start

pytestmark = pytest.mark.django_db


class WorkerKilled(BaseException):
    """Stands in for SIGKILL: nothing in the runner may catch it."""


def track_ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{n:05d}".ljust(22, "x") for n in range(count)]


class FakeSpotify:
    """The subset of genres.spotify.SpotifyClient the runner uses, with scripted faults.

    ``script[method]`` is a list of actions consumed one per call: None (behave), "ambiguous"
    (apply, then raise SpotifyAmbiguousWrite), "ambiguous-unapplied" (raise without applying),
    "unavailable", "quota", "auth", "kill" (raise WorkerKilled without applying), "kill-after"
    (apply, then raise WorkerKilled), or a callable run before the call.
    """

    def __init__(self, owner: str = "listener") -> None:
        self.owner = owner
        self.playlists: dict[str, dict[str, Any]] = {}
        self.script: dict[str, list[Any]] = {}
        self.calls: list[tuple[str, Any]] = []
        self._ids = itertools.count(1)

    def add_playlist(self, name: str, owner: str | None = None, items: int = 0) -> str:
        playlist_id = f"existing{next(self._ids):04d}"
        self.playlists[playlist_id] = {
            "id": playlist_id,
            "name": name,
            "owner": {"id": owner or self.owner},
            "external_urls": {"spotify": f"https://open.spotify.com/playlist/{playlist_id}"},
            "public": False,
            "items": track_ids("own", items),
        }
        return playlist_id

    def _fault(self, method: str) -> Any:
        actions = self.script.get(method) or [None]
        action = actions.pop(0) if self.script.get(method) else None
        if callable(action):
            action()
            return None
        if action == "unavailable":
            raise spotify.SpotifyUnavailable("503 Service Unavailable")
        if action == "quota":
            raise spotify.SpotifyRateLimited("Quota exceeded", retry_after=36000, quota=True)
        if action == "auth":
            raise spotify.InvalidGrant("invalid_grant")
        if action == "kill":
            raise WorkerKilled()
        if action == "ambiguous-unapplied":
            raise spotify.SpotifyAmbiguousWrite("502 Bad Gateway")
        return action

    def _after(self, action: Any) -> None:
        if action == "ambiguous":
            raise spotify.SpotifyAmbiguousWrite("502 Bad Gateway")
        if action == "kill-after":
            raise WorkerKilled()

    def my_playlists(self) -> Iterator[dict[str, Any]]:
        self.calls.append(("my_playlists", None))
        self._fault("my_playlists")
        for playlist in list(self.playlists.values()):
            yield {key: value for key, value in playlist.items() if key != "items"}

    def create_playlist(
        self, *, name: str, description: str = "", public: bool = False
    ) -> dict[str, Any]:
        self.calls.append(("create_playlist", name))
        action = self._fault("create_playlist")
        playlist_id = f"made{next(self._ids):04d}"
        self.playlists[playlist_id] = {
            "id": playlist_id,
            "name": name,
            "description": description,
            "owner": {"id": self.owner},
            "external_urls": {"spotify": f"https://open.spotify.com/playlist/{playlist_id}"},
            "public": public,
            "items": [],
        }
        self._after(action)
        return {k: v for k, v in self.playlists[playlist_id].items() if k != "items"}

    def playlist_track_ids(self, playlist_id: str) -> list[str]:
        self.calls.append(("playlist_track_ids", playlist_id))
        self._fault("playlist_track_ids")
        return list(self.playlists[playlist_id]["items"])

    def add_items(self, playlist_id: str, uris: list[str]) -> str:
        self.calls.append(("add_items", len(uris)))
        assert 1 <= len(uris) <= 100
        action = self._fault("add_items")
        self.playlists[playlist_id]["items"].extend(uri.rsplit(":", 1)[1] for uri in uris)
        self._after(action)
        return "snapshot"

    def made(self) -> list[dict[str, Any]]:
        return [p for pid, p in self.playlists.items() if pid.startswith("made")]

    def named(self, name: str) -> list[dict[str, Any]]:
        return [p for p in self.playlists.values() if p["name"] == name]


def make_listener(username: str = "listener") -> Any:
    user = get_user_model().objects.create_user(username=username)
    SpotifyAccount.objects.create(user=user, spotify_id=username, display_name=username)
    return user


def make_result(
    user: Any, genres: dict[str, list[str]], unclassified: list[str] | None = None
) -> ScanResult:
    scan = Scan.objects.create(user=user, status=Scan.Status.SUCCEEDED, step=Scan.Step.DONE)
    ordered = sorted(genres.items(), key=lambda item: (-len(item[1]), item[0]))
    payload = {
        "schemaVersion": 1,
        "scanId": str(scan.pk),
        "genres": [{"name": n, "count": len(t), "trackIds": t} for n, t in ordered],
        "unclassified": {"count": len(unclassified or []), "trackIds": unclassified or []},
    }
    return ScanResult.objects.create(scan=scan, user=user, payload=payload)


POP = track_ids("pop", 250)
ROCK = track_ids("rock", 30)
JAZZ = track_ids("jazz", 120)
LIBRARY = {"swedish pop": POP, "indie rock": ROCK, "jazz": JAZZ}


@pytest.fixture
def listener() -> Any:
    user = make_listener()
    make_result(user, LIBRARY)
    return user


@pytest.fixture
def fake() -> FakeSpotify:
    return FakeSpotify()


def start_and_run(user: Any, fake: FakeSpotify, **request: Any) -> PlaylistJob:
    request.setdefault("genres", ["swedish pop", "indie rock", "jazz"])
    job = playlist_job_start(user=user, **request)
    assert playlist_job_run(job_id=job.pk, client_factory=lambda _user: fake) == RUN_FINISHED
    job.refresh_from_db()
    return job


def by_genre(job: PlaylistJob) -> dict[str, dict[str, Any]]:
    return {entry["genre"]: entry for entry in playlist_job_json(job)["results"]}


def make_stale(job: PlaylistJob) -> None:
    PlaylistJob.objects.filter(pk=job.pk).update(
        heartbeat_at=timezone.now() - jobs.HEARTBEAT_STALE - timedelta(seconds=1)
    )


def test_it_creates_one_private_playlist_per_genre_with_exactly_its_tracks(listener, fake):
    job = start_and_run(listener, fake)

    assert job.status == PlaylistJob.Status.SUCCEEDED
    results = by_genre(job)
    assert [r["genre"] for r in playlist_job_json(job)["results"]] == [
        "swedish pop",
        "indie rock",
        "jazz",
    ]
    for genre, tracks in LIBRARY.items():
        (made,) = fake.named(f"{genre} (from Likes)")
        assert made["public"] is False
        assert made["items"] == tracks
        assert results[genre] == {
            "genre": genre,
            "status": "created",
            "playlistId": made["id"],
            "url": f"https://open.spotify.com/playlist/{made['id']}",
            "tracksAdded": len(tracks),
            "tracksTotal": len(tracks),
            "error": None,
        }
        row = GenrePlaylist.objects.get(user=listener, genre=genre)
        assert (row.playlist_id, row.pending_since) == (made["id"], None)
    assert [n for method, n in fake.calls if method == "add_items"] == [100, 100, 50, 30, 100, 20]


def test_running_the_same_request_again_adds_nothing_and_creates_nothing(listener, fake):
    start_and_run(listener, fake)
    calls_before = len(fake.calls)

    again = start_and_run(listener, fake)

    assert again.status == PlaylistJob.Status.SUCCEEDED
    for genre, tracks in LIBRARY.items():
        result = by_genre(again)[genre]
        assert (result["status"], result["reason"], result["tracksAdded"]) == (
            "skipped",
            "nothing new",
            0,
        )
        assert result["tracksTotal"] == len(tracks)
        assert len(fake.named(f"{genre} (from Likes)")) == 1
    assert len(fake.made()) == 3
    new_calls = [method for method, _ in fake.calls[calls_before:]]
    assert "create_playlist" not in new_calls
    assert "add_items" not in new_calls


def test_new_likes_update_the_existing_playlist_with_only_the_missing_tracks(listener, fake):
    start_and_run(listener, fake)
    newer_pop = track_ids("newpop", 7) + POP
    make_result(listener, {**LIBRARY, "swedish pop": newer_pop})

    job = start_and_run(listener, fake, genres=["swedish pop", "jazz"])

    pop = by_genre(job)["swedish pop"]
    assert (pop["status"], pop["tracksAdded"], pop["tracksTotal"]) == ("updated", 7, 257)
    assert by_genre(job)["jazz"]["status"] == "skipped"
    (made,) = fake.named("swedish pop (from Likes)")
    assert sorted(made["items"]) == sorted(newer_pop)


def test_a_same_name_playlist_of_the_listener_is_skipped_when_asked(listener, fake):
    theirs = fake.add_playlist("Swedish  Pop (from likes)", items=3)

    job = start_and_run(listener, fake, genres=["swedish pop", "jazz"], skip_duplicates=True)

    pop = by_genre(job)["swedish pop"]
    assert pop["status"] == "skipped"
    assert pop["reason"] == 'a playlist named "swedish pop (from Likes)" already exists'
    assert (pop["playlistId"], pop["tracksAdded"]) == (theirs, 0)
    assert fake.named("swedish pop (from Likes)") == []
    assert fake.playlists[theirs]["items"] == track_ids("own", 3)
    assert by_genre(job)["jazz"]["status"] == "created"
    assert job.status == PlaylistJob.Status.SUCCEEDED


def test_without_skip_duplicates_swedify_creates_its_own_beside_it_and_keeps_filling_it(
    listener, fake
):
    theirs = fake.add_playlist("swedish pop (from Likes)", items=3)

    job = start_and_run(listener, fake, genres=["swedish pop"], skip_duplicates=False)
    again = start_and_run(listener, fake, genres=["swedish pop"], skip_duplicates=False)

    assert by_genre(job)["swedish pop"]["status"] == "created"
    assert by_genre(again)["swedish pop"]["status"] == "skipped"
    (ours,) = fake.made()
    assert ours["items"] == POP
    assert fake.playlists[theirs]["items"] == track_ids("own", 3)


def test_a_followed_playlist_of_someone_else_is_not_a_duplicate(listener, fake):
    fake.add_playlist("jazz (from Likes)", owner="someone-else")

    job = start_and_run(listener, fake, genres=["jazz"])

    assert by_genre(job)["jazz"]["status"] == "created"
    assert len(fake.made()) == 1


def test_an_ambiguous_create_that_was_applied_is_adopted_not_repeated(listener, fake):
    fake.script["create_playlist"] = ["ambiguous"]

    job = start_and_run(listener, fake, genres=["jazz"])

    (made,) = fake.named("jazz (from Likes)")
    assert made["items"] == JAZZ
    assert by_genre(job)["jazz"]["playlistId"] == made["id"]
    assert by_genre(job)["jazz"]["status"] == "created"


def test_an_ambiguous_create_that_was_not_applied_is_created_once_more(listener, fake):
    fake.script["create_playlist"] = ["ambiguous-unapplied"]

    job = start_and_run(listener, fake, genres=["jazz"])

    (made,) = fake.named("jazz (from Likes)")
    assert made["items"] == JAZZ
    assert by_genre(job)["jazz"]["status"] == "created"
    assert [m for m, _ in fake.calls].count("create_playlist") == 2


def test_two_unconfirmed_creates_fail_the_genre_and_the_next_run_reconciles(listener, fake):
    fake.script["create_playlist"] = ["ambiguous-unapplied", "ambiguous-unapplied"]
    job = start_and_run(listener, fake, genres=["jazz", "indie rock"])
    assert by_genre(job)["jazz"]["status"] == "failed"
    assert "did not confirm" in by_genre(job)["jazz"]["error"]
    assert job.status == PlaylistJob.Status.PARTIAL
    assert GenrePlaylist.objects.get(genre="jazz").pending_since is not None

    again = start_and_run(listener, fake, genres=["jazz"])

    assert by_genre(again)["jazz"]["status"] == "created"
    assert len(fake.named("jazz (from Likes)")) == 1


def test_an_ambiguous_add_that_was_applied_never_duplicates_tracks(listener, fake):
    fake.script["add_items"] = [None, "ambiguous", "ambiguous-unapplied"]

    job = start_and_run(listener, fake, genres=["swedish pop"])

    (made,) = fake.named("swedish pop (from Likes)")
    assert made["items"] == POP
    assert by_genre(job)["swedish pop"]["tracksAdded"] == 250


def test_an_outage_on_one_genre_reports_its_real_counts_and_the_others_go_on(listener, fake):
    fake.script["add_items"] = [None, "unavailable"]

    job = start_and_run(listener, fake)

    assert job.status == PlaylistJob.Status.PARTIAL
    pop = by_genre(job)["swedish pop"]
    assert pop["status"] == "failed"
    assert (pop["tracksAdded"], pop["tracksTotal"]) == (100, 250)
    assert "503" in pop["error"]
    assert pop["playlistId"] == fake.named("swedish pop (from Likes)")[0]["id"]
    assert by_genre(job)["indie rock"]["status"] == "created"
    assert by_genre(job)["jazz"]["status"] == "created"

    again = start_and_run(listener, fake, genres=["swedish pop"])

    pop = by_genre(again)["swedish pop"]
    assert (pop["status"], pop["tracksAdded"]) == ("updated", 150)
    assert fake.named("swedish pop (from Likes)")[0]["items"] == POP


def test_a_job_where_every_genre_fails_is_failed(listener, fake):
    fake.script["my_playlists"] = ["unavailable"] * 3

    job = start_and_run(listener, fake)

    assert job.status == PlaylistJob.Status.FAILED
    assert {r["status"] for r in by_genre(job).values()} == {"failed"}


def test_a_quota_pause_stops_the_job_and_says_when_to_retry(listener, fake):
    fake.script["add_items"] = [None, None, None, "quota"]

    job = start_and_run(listener, fake)

    results = by_genre(job)
    assert results["swedish pop"]["status"] == "created"
    rock = results["indie rock"]
    assert rock["status"] == "failed"
    assert rock["error"].startswith("paused by Spotify's quota, retry after ")
    assert results["jazz"]["status"] == "failed"
    assert results["jazz"]["error"].startswith("not attempted: paused by Spotify's quota")
    assert job.status == PlaylistJob.Status.PARTIAL
    assert job.error["retryAt"] > playlist_job_json(job)["startedAt"]
    assert [m for m, _ in fake.calls].count("create_playlist") == 2


def test_an_expired_sign_in_fails_every_genre_left(listener, fake):
    fake.script["my_playlists"] = ["auth"]

    job = start_and_run(listener, fake)

    assert job.status == PlaylistJob.Status.FAILED
    assert by_genre(job)["swedish pop"]["error"] == "Spotify sign-in has expired: sign in again"
    assert by_genre(job)["jazz"]["error"].startswith("not attempted: Spotify sign-in has expired")
    assert fake.made() == []


def test_unclassified_tracks_can_become_a_playlist(fake):
    user = make_listener()
    loose = track_ids("loose", 5)
    make_result(user, LIBRARY, unclassified=loose)

    job = start_and_run(user, fake, genres=["Unclassified"])

    assert by_genre(job)["Unclassified"]["status"] == "created"
    assert fake.named("Unclassified (from Likes)")[0]["items"] == loose


def test_a_worker_killed_mid_job_is_resumed_after_its_heartbeat_goes_stale(listener, fake):
    fake.script["add_items"] = [None, "kill-after"]
    job = playlist_job_start(user=listener, genres=["swedish pop", "jazz"])
    with pytest.raises(WorkerKilled):
        playlist_job_run(job_id=job.pk, client_factory=lambda _user: fake)
    job.refresh_from_db()
    assert job.status == PlaylistJob.Status.RUNNING
    assert by_genre(job)["swedish pop"]["tracksAdded"] == 100  # the last batch went unrecorded

    # A redelivered task while the heartbeat is fresh must not run it twice at once.
    assert playlist_job_run(job_id=job.pk, client_factory=lambda _user: fake) == RUN_NOT_CLAIMED
    make_stale(job)
    assert playlist_job_run(job_id=job.pk, client_factory=lambda _user: fake) == RUN_FINISHED

    job.refresh_from_db()
    assert job.status == PlaylistJob.Status.SUCCEEDED
    assert job.attempts == 2
    pop = by_genre(job)["swedish pop"]
    assert (pop["status"], pop["tracksAdded"]) == ("created", 250)
    assert fake.named("swedish pop (from Likes)")[0]["items"] == POP
    assert fake.named("jazz (from Likes)")[0]["items"] == JAZZ
    assert len(fake.made()) == 2


def test_a_worker_killed_right_after_the_create_is_reconciled_to_one_playlist(listener, fake):
    theirs = fake.add_playlist("jazz (from Likes)", items=2)
    fake.script["create_playlist"] = ["kill-after"]
    job = playlist_job_start(user=listener, genres=["jazz"], skip_duplicates=False)
    with pytest.raises(WorkerKilled):
        playlist_job_run(job_id=job.pk, client_factory=lambda _user: fake)
    make_stale(job)

    playlist_job_run(job_id=job.pk, client_factory=lambda _user: fake)

    job.refresh_from_db()
    (ours,) = fake.made()
    assert by_genre(job)["jazz"]["playlistId"] == ours["id"]
    assert ours["items"] == JAZZ
    assert fake.playlists[theirs]["items"] == track_ids("own", 2)
    assert [m for m, _ in fake.calls].count("create_playlist") == 1


def test_a_new_job_reconciles_a_create_left_pending_by_a_dead_job(listener, fake):
    fake.script["create_playlist"] = ["kill-after"]
    dead = playlist_job_start(user=listener, genres=["jazz"])
    with pytest.raises(WorkerKilled):
        playlist_job_run(job_id=dead.pk, client_factory=lambda _user: fake)
    make_stale(dead)

    job = start_and_run(listener, fake, genres=["jazz"])

    assert by_genre(job)["jazz"]["status"] == "created"
    assert len(fake.named("jazz (from Likes)")) == 1
    assert fake.named("jazz (from Likes)")[0]["items"] == JAZZ


def test_a_second_job_of_the_listener_waits_while_one_runs(listener, fake):
    first = playlist_job_start(user=listener, genres=["jazz"])
    second = playlist_job_start(user=listener, genres=["jazz"])
    outcome: list[str] = []

    def run_second_meanwhile() -> None:
        outcome.append(playlist_job_run(job_id=second.pk, client_factory=lambda _user: fake))

    fake.script["create_playlist"] = [run_second_meanwhile]
    playlist_job_run(job_id=first.pk, client_factory=lambda _user: fake)

    assert outcome == [RUN_BUSY]
    second.refresh_from_db()
    assert second.status == PlaylistJob.Status.QUEUED
    assert playlist_job_run(job_id=second.pk, client_factory=lambda _user: fake) == RUN_FINISHED
    assert len(fake.named("jazz (from Likes)")) == 1


def test_a_finished_job_is_never_run_again(listener, fake):
    job = start_and_run(listener, fake, genres=["jazz"])
    calls = len(fake.calls)

    assert playlist_job_run(job_id=job.pk, client_factory=lambda _user: fake) == RUN_NOT_CLAIMED
    assert len(fake.calls) == calls


def test_a_worker_that_lost_its_claim_stops_writing(listener, fake):
    job = playlist_job_start(user=listener, genres=["swedish pop", "jazz"])

    def taken_over() -> None:
        PlaylistJob.objects.filter(pk=job.pk).update(claimed_by="another-worker")

    fake.script["add_items"] = [None, taken_over]
    playlist_job_run(job_id=job.pk, client_factory=lambda _user: fake)

    job.refresh_from_db()
    assert job.status == PlaylistJob.Status.RUNNING
    assert job.claimed_by == "another-worker"
    assert fake.named("jazz (from Likes)") == []


@pytest.mark.parametrize("job_id", ["00000000-0000-0000-0000-000000000000", "garbage", None])
def test_an_unknown_or_malformed_job_id_is_not_claimed(fake, job_id):
    assert playlist_job_run(job_id=job_id, client_factory=lambda _user: fake) == RUN_NOT_CLAIMED
    assert fake.calls == []


def test_recovery_finds_dead_and_forgotten_jobs_but_not_live_or_finished_ones(listener, fake):
    from genres.jobs import QUEUED_STALE
    from genres.playlists import playlist_jobs_due_for_recovery

    finished = start_and_run(listener, fake, genres=["jazz"])
    fresh = playlist_job_start(user=listener, genres=["jazz"])
    other = make_listener("other")
    make_result(other, LIBRARY)
    forgotten = playlist_job_start(user=other, genres=["jazz"])
    live = playlist_job_start(user=listener, genres=["jazz"])
    dead = playlist_job_start(user=listener, genres=["jazz"])
    long_ago = timezone.now() - QUEUED_STALE - timedelta(seconds=1)
    PlaylistJob.objects.filter(pk__in=[forgotten.pk, finished.pk]).update(created_at=long_ago)
    PlaylistJob.objects.filter(pk__in=[live.pk, dead.pk]).update(
        status=PlaylistJob.Status.RUNNING, heartbeat_at=timezone.now()
    )
    make_stale(dead)

    due = playlist_jobs_due_for_recovery()

    assert sorted(due) == sorted([str(forgotten.pk), str(dead.pk)])
    assert str(fresh.pk) not in due


def test_recovery_leaves_a_job_that_only_waits_for_the_listeners_running_one(listener, fake):
    from genres.jobs import QUEUED_STALE
    from genres.playlists import playlist_jobs_due_for_recovery

    running = playlist_job_start(user=listener, genres=["jazz"])
    waiting = playlist_job_start(user=listener, genres=["jazz"])
    PlaylistJob.objects.filter(pk=waiting.pk).update(
        created_at=timezone.now() - QUEUED_STALE - timedelta(minutes=30)
    )
    PlaylistJob.objects.filter(pk=running.pk).update(
        status=PlaylistJob.Status.RUNNING, heartbeat_at=timezone.now()
    )

    assert playlist_jobs_due_for_recovery() == []
    # Once the running job's worker is dead, both are due again.
    make_stale(running)
    assert sorted(playlist_jobs_due_for_recovery()) == sorted([str(running.pk), str(waiting.pk)])


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_from_other_connections_neither_take_the_job_nor_overlap_it(monkeypatch):
    import threading

    from django.db import connection

    monkeypatch.setattr(playlists, "_enqueue", lambda job_id: None)
    user = make_listener()
    make_result(user, LIBRARY)
    fake = FakeSpotify()
    job = playlist_job_start(user=user, genres=["jazz"])
    other = playlist_job_start(user=user, genres=["indie rock"])
    outcomes: dict[str, str] = {}

    def run_elsewhere(name: str, job_id: Any) -> None:
        try:
            outcomes[name] = playlist_job_run(job_id=job_id, client_factory=lambda _u: fake)
        except Exception as error:  # noqa: BLE001 - a thread's error must reach the assert
            outcomes[name] = repr(error)
        finally:
            connection.close()

    def meanwhile() -> None:
        # One after the other: SQLite's shared in-memory test database cannot wait for a lock.
        for name, job_id in (("same job", job.pk), ("other job", other.pk)):
            thread = threading.Thread(target=run_elsewhere, args=(name, job_id))
            thread.start()
            thread.join(10)

    fake.script["create_playlist"] = [meanwhile]
    assert playlist_job_run(job_id=job.pk, client_factory=lambda _u: fake) == RUN_FINISHED

    assert outcomes == {"same job": RUN_NOT_CLAIMED, "other job": RUN_BUSY}
    assert [m for m, _ in fake.calls].count("create_playlist") == 1
    assert fake.named("jazz (from Likes)")[0]["items"] == JAZZ


def test_a_client_that_cannot_be_made_fails_the_job_instead_of_crashing_it(listener):
    def broken_factory(_user: Any) -> Any:
        raise RuntimeError("token cannot be decrypted")

    job = playlist_job_start(user=listener, genres=["jazz", "indie rock"])

    assert playlist_job_run(job_id=job.pk, client_factory=broken_factory) == RUN_FINISHED

    job.refresh_from_db()
    assert job.status == PlaylistJob.Status.FAILED
    assert job.error["error"] == "Could not connect to Spotify"
    assert by_genre(job)["indie rock"]["error"] == (
        "not attempted: could not connect to Spotify: token cannot be decrypted"
    )


def test_a_job_whose_scan_was_deleted_fails_clearly(listener, fake):
    job = playlist_job_start(user=listener, genres=["jazz"])
    Scan.objects.filter(pk=job.scan_id).delete()

    playlist_job_run(job_id=job.pk, client_factory=lambda _user: fake)

    job.refresh_from_db()
    assert job.status == PlaylistJob.Status.FAILED
    assert by_genre(job)["jazz"]["error"] == "the scan this job was based on no longer exists"
    assert fake.calls == []


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_goes_on_while_one_spotify_call_takes_long(monkeypatch):
    import time

    monkeypatch.setattr(playlists, "_enqueue", lambda job_id: None)
    monkeypatch.setattr(jobs, "HEARTBEAT_EVERY", timedelta(milliseconds=50))
    user = make_listener()
    make_result(user, LIBRARY)
    fake = FakeSpotify()
    job = playlist_job_start(user=user, genres=["jazz"])
    beats: list[Any] = []

    def slow_call() -> None:
        claimed = PlaylistJob.objects.get(pk=job.pk).heartbeat_at
        time.sleep(0.4)  # the limiter or a short 429 holding one call
        beats.append((claimed, PlaylistJob.objects.get(pk=job.pk).heartbeat_at))

    fake.script["create_playlist"] = [slow_call]
    playlist_job_run(job_id=job.pk, client_factory=lambda _u: fake)

    ((before, during),) = beats
    assert during > before


def test_the_task_tries_again_later_while_another_job_of_the_listener_runs(monkeypatch):
    from genres import tasks

    class Retry(Exception):
        pass

    retried: list[dict[str, Any]] = []

    def retry(**options: Any) -> Retry:
        retried.append(options)
        return Retry()

    monkeypatch.setattr(playlist_runner, "playlist_job_run", lambda **_: RUN_BUSY)
    monkeypatch.setattr(tasks.playlist_job_run_task, "retry", retry)

    with pytest.raises(Retry):
        tasks.playlist_job_run_task("00000000-0000-0000-0000-000000000000")

    assert retried == [{"countdown": playlists.BUSY_RETRY_SECONDS}]
