"""At most one queued or running playlist job per listener (playlist_job_request)."""

from __future__ import annotations

import pytest

from genres.models import PlaylistJob
from genres.playlists import PlaylistInputError, playlist_job_request
from tests.genres.test_playlists_runner import LIBRARY, make_listener, make_result

pytestmark = pytest.mark.django_db


@pytest.fixture
def listener():
    user = make_listener()
    make_result(user, LIBRARY)
    return user


def test_a_second_request_while_one_is_queued_answers_with_that_job(listener) -> None:
    first, created_first = playlist_job_request(user=listener, genres=["jazz"])
    second, created_second = playlist_job_request(user=listener, genres=["indie rock"])

    assert (created_first, created_second) == (True, False)
    assert second.pk == first.pk
    assert PlaylistJob.objects.filter(user=listener).count() == 1


def test_a_running_job_blocks_too_and_a_finished_one_does_not(listener) -> None:
    job, _ = playlist_job_request(user=listener, genres=["jazz"])
    PlaylistJob.objects.filter(pk=job.pk).update(status=PlaylistJob.Status.RUNNING)
    assert playlist_job_request(user=listener, genres=["jazz"]) == (job, False)

    PlaylistJob.objects.filter(pk=job.pk).update(status=PlaylistJob.Status.PARTIAL)
    again, created = playlist_job_request(user=listener, genres=["jazz"])

    assert created is True
    assert again.pk != job.pk


def test_other_listeners_are_not_blocked(listener) -> None:
    playlist_job_request(user=listener, genres=["jazz"])
    other = make_listener("other")
    make_result(other, LIBRARY)

    _, created = playlist_job_request(user=other, genres=["jazz"])

    assert created is True


def test_a_bad_request_is_refused_even_while_a_job_runs(listener) -> None:
    playlist_job_request(user=listener, genres=["jazz"])

    with pytest.raises(PlaylistInputError, match="unknown genres"):
        playlist_job_request(user=listener, genres=["polka"])
