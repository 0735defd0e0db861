"""A real Celery worker (in this process, on an in-memory broker) runs "Sync now" started over
HTTP, with no beat: the run's driver task polls while the worker runs the run's scan and its
playlist job, and the new likes land in the listener's existing genre playlist."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
from celery import Celery

from genres.models import GenrePlaylist, PlaylistJob, Scan, SyncSchedule
from genres.playlist_runner import playlist_job_run
from genres.playlists import playlist_job_start
from genres.scan_runner import scan_run
from genres.scans import scan_start
from tests.genres.conftest import sign_in
from tests.genres.test_scan_worker import wait_for, worker_app  # noqa: F401 - the fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

USER = "small"


def test_sync_now_over_http_is_run_to_its_end_by_a_worker(
    client: Any,
    spotify_at_sandbox: Any,
    worker_app: Celery,  # noqa: F811
):
    from django.contrib.auth import get_user_model

    sandbox = spotify_at_sandbox
    sign_in(client, sandbox, USER)
    user = get_user_model().objects.get(spotify_account__spotify_id=USER)
    # Set up: a scan and a playlist for the biggest genre, run here or by the worker
    # (whichever claims each first).
    scan, _ = scan_start(user=user, sources=["liked"], refresh=True)
    scan_run(scan_id=scan.pk)
    assert wait_for(str(scan.pk)).status == Scan.Status.SUCCEEDED
    truth = sandbox.truth(USER)["genres"]
    genre = max(truth, key=lambda g: (len(truth[g]), g))
    job = playlist_job_start(user=user, genres=[genre])
    playlist_job_run(job_id=job.pk)
    deadline = time.monotonic() + 30
    while PlaylistJob.objects.get(pk=job.pk).status in ("queued", "running"):
        assert time.monotonic() < deadline, "the playlist job did not end"
        time.sleep(0.05)
    added = []
    while not any(genre in a["genres"] for t in added for a in t["artists"]):
        added += sandbox.add_likes(USER, 3)["added"]

    token = client.get("/session").json()["csrfToken"]
    answer = client.post(
        "/api/sync/run", data="{}", content_type="application/json", HTTP_X_CSRFTOKEN=token
    )

    assert answer.status_code == 202, answer.content
    assert answer.json()["running"] is True
    deadline = time.monotonic() + 60
    while SyncSchedule.objects.get(user=user).running_since is not None:
        assert time.monotonic() < deadline, "the run did not end"
        time.sleep(0.1)
    body = client.get("/api/sync").json()
    assert body["lastResult"]["status"] == "succeeded", body
    assert body["lastResult"]["tracksAdded"] >= 1
    assert body["lastRunAt"] is not None
    name = GenrePlaylist.objects.get(user=user, genre=genre).name
    playlists = {p["name"]: [i["id"] for i in p["items"]] for p in sandbox.playlists(USER)}
    assert list(playlists) == [name]  # no new playlist
    tracks = playlists[name]
    assert max(Counter(tracks).values()) == 1
    assert sorted(tracks) == sandbox.truth(USER)["genres"][genre]
    assert Scan.objects.filter(user=user, origin="listener").count() == 2
    assert PlaylistJob.objects.filter(user=user, origin="listener").count() == 2
    assert json.loads(answer.content)["enabled"] is False  # sync now needs no schedule
