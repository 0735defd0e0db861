"""The overlap window, proven: during a blue-green cutover the old and the new release serve
at once, on one PostgreSQL database, one Redis and one Spotify (the sandbox). Both releases'
gunicorn slots and Celery workers run from their own source folders (the new one is the
committed code with the artist cache and the genres result one schema version higher and
fields added to them, to the scan checkpoint and to the scan JSON: tests/integration/overlap.py),
and one listener's browser talks to both through one session: a sign-in begun on one is
finished on the other, a scan paused on one release's worker is resumed from its checkpoint by
the other's (both ways), a playlist job crosses over, and both answer the same pages and JSON.

The artist cache is checked where a pass could be vacuous: before each cross-release read the
Artist table is made too old to answer, so an artist whose cached value one release cannot
read is asked of Spotify again, and the sandbox's request log shows it. The negative control
runs the same steps with a release whose cache value the old one cannot read, and the same
check catches it.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from genres.artists import CACHE_KEY
from genres.models import Artist, LibraryTrack, Scan
from sandbox.testing import RunningSandbox, running_sandbox
from swedify.celery import app as celery_app
from tests.deployments.bluegreen import SLOT_ENV, free_port, head_release, new_environment
from tests.integration.conftest import database_url
from tests.integration.overlap import (
    BAD_VERSION,
    INCOMPATIBLE_RELEASE,
    NEW_RELEASE,
    NEW_VERSION,
    OLD_VERSION,
    Browser,
    Edit,
    Release,
    artist_lookups,
    process_env,
    release_patched,
    running_release,
    wait_for,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

LISTENER = {"id": "overlap-listener", "tracks": 600, "artists": 300, "artist_offset": 30_000}
# Artist lookups Spotify answers before its quota stops a scan mid-way (a pause, not a crash:
# the checkpoint is written and another worker resumes it).
FIRST_SCAN_QUOTA = 40
SECOND_SCAN_QUOTA = 10
NEW_LIKES, NEW_ARTISTS = 40, 25
JOB_TIMEOUT = 60.0
# The queued task name running deployments share (genres.tasks), sent the way jobs_recover
# sends it when a paused scan is due.
SCAN_RUN_TASK = "genres.tasks.scan_run"
STALE = timedelta(days=365)


@dataclass
class Overlap:
    sandbox: RunningSandbox
    old: Release
    new: Release
    env: dict[str, str]
    browser: Browser

    # -- jobs --

    def scan(self, through: Release, *, refresh: bool = False) -> str:
        started = self.browser.call(through, "POST", "/api/scans", {"refresh": refresh})
        assert started.status_code == 202, started.text
        return started.json()["id"]

    def scan_json(self, through: Release, scan_id: str) -> dict[str, Any]:
        answer = self.browser.call(through, "GET", f"/api/scans/{scan_id}")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def scan_until(self, through: Release, scan_id: str, status: str) -> dict[str, Any]:
        done = {status, "failed", "succeeded"}
        scan = wait_for(
            lambda: (s := self.scan_json(through, scan_id))["status"] in done and s,
            timeout=JOB_TIMEOUT,
            what=f"scan {scan_id} to be {status}",
        )
        assert scan["status"] == status, scan
        return scan

    def playlist_job_finished(self, through: Release, job_id: str) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            answer = self.browser.call(through, "GET", f"/api/playlist-jobs/{job_id}")
            job = answer.json()
            return job if job["status"] in {"succeeded", "partial", "failed"} else None

        return wait_for(finished, timeout=JOB_TIMEOUT, what=f"playlist job {job_id}")

    def resume(self, scan_id: str, *, on: Release) -> None:
        """The paused scan is due now; ``on``'s worker (the only one running) takes it."""
        assert Scan.objects.filter(pk=scan_id, status=Scan.Status.PAUSED).update(
            resume_at=timezone.now()
        )
        assert on.worker is not None
        celery_app.send_task(SCAN_RUN_TASK, args=[scan_id])

    def workers_only(self, release: Release) -> None:
        """Only ``release``'s worker runs jobs from now on."""
        for other in (self.old, self.new):
            if other is not release:
                other.worker_stop()
        if release.worker is None:
            release.worker_start(self.env)

    # -- checks --

    def logs_clean(self) -> None:
        """Nothing raised in either release's slot or workers, and Redis never failed."""
        for release in (self.old, self.new):
            assert release.log_problems() == [], release.version

    def genres_match_truth(self, through: Release) -> dict[str, Any]:
        answer = self.browser.call(through, "GET", "/api/genres")
        assert answer.status_code == 200, answer.text
        genres = answer.json()
        truth = self.sandbox.truth(LISTENER["id"])
        assert {g["name"]: sorted(g["trackIds"]) for g in genres["genres"]} == truth["genres"]
        assert genres["totalTracks"] == truth["totalTracks"]
        return genres

    def pages_answer(self) -> dict[str, Any]:
        """Both releases answer the listener's pages and API with 2xx through one session,
        each is the release it says it is, and both answer the same genres JSON."""
        for release in (self.old, self.new):
            assert self.browser.get(release, "/health").json()["version"] == release.version
            session = self.browser.get(release, "/session").json()
            assert session["authenticated"] is True, (release.version, session)
            assert session["user"]["id"] == LISTENER["id"]
            for path in ("/", "/genres", "/genres/export.json", "/genres/export.csv"):
                page = self.browser.get(release, path, allow_redirects=False)
                assert 200 <= page.status_code < 300, (release.version, path, page.status_code)
        old_genres = self.genres_match_truth(self.old)
        assert self.genres_match_truth(self.new) == old_genres
        return old_genres


def artists_only_in_redis() -> None:
    """Make every stored artist too old for the database layer to answer: from now on an
    artist is known only if a release can read its cached value, else Spotify is asked."""
    Artist.objects.update(fetched_at=timezone.now() - STALE)


def asked_once_each(lookups: list[str]) -> None:
    """No artist was asked of Spotify twice (a resumed scan re-asks nothing stored)."""
    repeated = sorted(a for a, n in Counter(lookups).items() if n > 1)
    assert not repeated, f"artists asked of Spotify twice: {repeated[:10]} ({len(repeated)})"


def no_cache_miss_storm(lookups: list[str], expected: set[str]) -> None:
    """The cache check: Spotify was asked for exactly the ``expected`` artists, once each;
    every other artist was read from a value in Redis, whichever release wrote it."""
    asked_once_each(lookups)
    beyond = sorted(set(lookups) - expected)
    assert not beyond, (
        f"{len(beyond)} artists asked of Spotify although the other release had cached "
        f"them (a cache miss storm): {beyond[:10]}"
    )
    assert set(lookups) == expected


def library_artists() -> set[str]:
    """The artists of the listener's stored library (the only listener of these tests)."""
    return {a for ids in LibraryTrack.objects.values_list("artist_ids", flat=True) for a in ids}


def cached_versions(artist_ids: Iterable[str]) -> Counter[Any]:
    """The schema versions ("v") of the artists' values in Redis, as the test reads them."""
    values = cache.get_many([CACHE_KEY.format(a) for a in artist_ids])
    return Counter(v.get("v") if isinstance(v, dict) else type(v).__name__ for v in values.values())


@contextlib.contextmanager
def overlap_stack(
    tmp_path: Path, *, new_version: str, edits: tuple[Edit, ...]
) -> Iterator[Overlap]:
    if "redis" not in settings.CACHES["default"]["BACKEND"]:
        pytest.skip(
            "the overlap window needs one Redis shared by both releases (CI runs this test)"
        )
    old_source = head_release()
    new_source = release_patched(source=old_source, target=tmp_path / "new-release", edits=edits)
    environment = new_environment()
    old_port, new_port = free_port(), free_port()
    with running_sandbox(users=[LISTENER], latency_ms=2) as sandbox:
        env = process_env(
            database_url=database_url(), sandbox=sandbox, secret_key=SLOT_ENV["SECRET_KEY"]
        )
        # Both releases register the same redirect URI (the old slot's; a proxy's in production).
        env["SPOTIFY_REDIRECT_URI"] = f"http://127.0.0.1:{old_port}/auth/spotify/callback"
        with (
            running_release(
                environment=environment, slot="blue", version=OLD_VERSION, source=old_source,
                port=old_port, env=env, log_dir=tmp_path,
            ) as old,
            running_release(
                environment=environment, slot="green", version=new_version, source=new_source,
                port=new_port, env=env, log_dir=tmp_path,
            ) as new,
        ):  # fmt: skip
            browser = Browser()
            try:
                yield Overlap(sandbox=sandbox, old=old, new=new, env=env, browser=browser)
            finally:
                # Idle keep-alive connections would hold the slots' graceful stop up.
                browser.session.close()


@pytest.fixture
def overlap(transactional_db: None, tmp_path: Path) -> Iterator[Overlap]:
    with overlap_stack(tmp_path, new_version=NEW_VERSION, edits=NEW_RELEASE) as stack:
        yield stack


@pytest.fixture
def incompatible(transactional_db: None, tmp_path: Path) -> Iterator[Overlap]:
    with overlap_stack(tmp_path, new_version=BAD_VERSION, edits=INCOMPATIBLE_RELEASE) as stack:
        yield stack


def test_the_old_and_the_new_release_share_sessions_cache_and_jobs_without_losing_data(
    overlap: Overlap,
) -> None:
    sandbox, old, new, browser = overlap.sandbox, overlap.old, overlap.new, overlap.browser

    # A sign-in started on the old release is finished by the new one: one session for both.
    browser.sign_in(start=old, finish=new, sandbox=sandbox, user=LISTENER["id"])
    for release in (old, new):
        assert browser.get(release, "/session").json()["authenticated"] is True

    # A scan started through the old release, run by the old worker until Spotify's quota
    # pauses it, is resumed from the old checkpoint by the new worker.
    overlap.workers_only(old)
    sandbox.reset_stats()
    sandbox.set_faults(quota={"artists": FIRST_SCAN_QUOTA})
    first = overlap.scan(old)
    paused = overlap.scan_until(new, first, "paused")
    assert paused["artistsFetched"] > 0, paused
    assert paused["attemptsBy"] == [], paused  # the new release defaults a field old left out
    sandbox.clear_faults()
    # From here on only Redis knows the artists the old release stored (schema version 1).
    cached_by_old = set(Artist.objects.values_list("spotify_id", flat=True))
    assert cached_versions(cached_by_old) == {1: len(cached_by_old)}
    artists_only_in_redis()
    sandbox.reset_stats()
    overlap.workers_only(new)
    overlap.resume(first, on=new)
    done = overlap.scan_until(old, first, "succeeded")
    assert "attemptsBy" not in done  # the old release answered, without the new field
    assert overlap.scan_json(new, first)["attemptsBy"] == [NEW_VERSION]
    assert Scan.objects.get(pk=first).attempts == 2
    # The result the new release wrote (schema version 2, an added field) reads the same
    # through the old release, pages included.
    genres = overlap.pages_answer()
    assert (genres["schemaVersion"], genres["artistsKnown"]) == (2, genres["totalArtists"])
    # The new worker read every value the old one cached and asked Spotify only for the rest
    # of the library's artists, once each; both releases wrote the same keys, each in its own
    # schema version, and the new one left the old one's values alone.
    overlap.logs_clean()
    asked_by_new = artist_lookups(sandbox)
    no_cache_miss_storm(asked_by_new, expected=library_artists() - cached_by_old)
    assert cached_versions(cached_by_old) == {1: len(cached_by_old)}
    assert cached_versions(asked_by_new) == {2: len(asked_by_new)}

    # The reverse, with only Redis knowing the artists: new likes bring new artists; a scan
    # started through the new release, paused on the new worker, finished by the old one.
    likes = sandbox.add_likes(LISTENER["id"], NEW_LIKES, new_artists=NEW_ARTISTS)
    new_artists = {artist["id"] for artist in likes["new_artists"]}
    assert len(new_artists) == NEW_ARTISTS
    artists_only_in_redis()
    sandbox.reset_stats()
    sandbox.set_faults(quota={"artists": SECOND_SCAN_QUOTA})
    second = overlap.scan(new, refresh=True)
    overlap.scan_until(old, second, "paused")
    sandbox.clear_faults()
    overlap.workers_only(old)
    overlap.resume(second, on=old)
    overlap.scan_until(new, second, "succeeded")
    # Old artists came from the cache in both directions (v1 read by new, v2 read by old);
    # only the new ones were asked of Spotify, each once although two releases looked.
    overlap.logs_clean()
    no_cache_miss_storm(artist_lookups(sandbox), expected=new_artists)
    # The old release kept the field it does not know in the checkpoint it rewrote.
    second_row = Scan.objects.get(pk=second)
    assert second_row.attempts == 2
    assert second_row.checkpoint["attemptsBy"] == [NEW_VERSION]
    assert second_row.checkpoint["artists"]["fetched"] == NEW_ARTISTS

    # A playlist job started through the new release is run by the old worker.
    chosen = [g["name"] for g in overlap.genres_match_truth(new)["genres"][:2]]
    created = browser.call(new, "POST", "/api/playlists", {"genres": chosen})
    assert created.status_code == 202, created.text
    job = overlap.playlist_job_finished(new, created.json()["id"])
    assert job["status"] == "succeeded", job
    assert browser.call(old, "GET", f"/api/playlist-jobs/{job['id']}").json() == job
    truth = sandbox.truth(LISTENER["id"])
    on_spotify = {p["name"]: p for p in sandbox.playlists(LISTENER["id"])}
    for result in job["results"]:
        playlist = on_spotify[f"{result['genre']} (from Likes)"]
        assert sorted(i["id"] for i in playlist["items"]) == truth["genres"][result["genre"]]

    # The latest result is the old release's again (schema version 1), read by the new one.
    assert overlap.pages_answer()["schemaVersion"] == 1
    # Each worker ran what the test says it ran (and its log is among those checked below).
    assert old.task_outcomes() == [["paused"], ["succeeded", "finished"]]
    assert new.task_outcomes() == [["succeeded", "paused"]]
    overlap.logs_clean()

    # Signing out through one release signs out of both.
    assert browser.call(old, "POST", "/auth/logout").status_code in (200, 302)
    for release in (old, new):
        assert browser.get(release, "/session").json() == {"authenticated": False}


def test_the_same_harness_catches_a_cache_value_the_old_release_cannot_read(
    incompatible: Overlap,
) -> None:
    """Negative control: a new release that writes an artist's genres as one string under the
    same key. Its own scan works; the old release cannot read those values, asks Spotify for
    every artist again, and the check above names them."""
    sandbox, old, bad, browser = (
        incompatible.sandbox,
        incompatible.old,
        incompatible.new,
        incompatible.browser,
    )
    browser.sign_in(start=old, finish=bad, sandbox=sandbox, user=LISTENER["id"])
    incompatible.workers_only(bad)
    first = incompatible.scan(bad)
    incompatible.scan_until(old, first, "succeeded")
    incompatible.genres_match_truth(old)
    assert set(cached_versions(list(Artist.objects.values_list("spotify_id", flat=True)))) == {2}

    artists_only_in_redis()
    sandbox.reset_stats()
    incompatible.workers_only(old)
    second = incompatible.scan(old, refresh=True)
    incompatible.scan_until(bad, second, "succeeded")
    incompatible.genres_match_truth(bad)
    incompatible.logs_clean()  # Redis worked: the misses are the value's shape
    with pytest.raises(AssertionError, match="cache miss storm"):
        no_cache_miss_storm(artist_lookups(sandbox), expected=set())
    # Both releases really served (the requests did not all reach one of them).
    assert browser.get(old, "/health").json()["version"] == OLD_VERSION
    assert browser.get(bad, "/health").json()["version"] == BAD_VERSION
