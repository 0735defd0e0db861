"""Libraries stored before song and album names were kept get them on their next scan: the
migration that adds the names has each complete source read fully once more."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model

from genres import ratelimit
from genres.models import LibrarySource, LibraryTrack
from tests.genres.test_scan_sandbox import route_count, scan_to_end

pytestmark = pytest.mark.django_db

migration = importlib.import_module("genres.migrations.0005_library_track_names")


def test_the_migration_marks_every_complete_source_for_one_full_read() -> None:
    user = get_user_model().objects.create_user("names")
    LibrarySource.objects.create(user=user, source="liked", total=3, complete=True)
    LibrarySource.objects.create(user=user, source="playlist:p1", total=0, complete=False)

    migration.reread_complete_sources(apps, None)

    assert not LibrarySource.objects.filter(complete=True).exists()
    assert LibrarySource.objects.get(source="liked").total == 3  # only the flag changes


@pytest.mark.integration
def test_a_library_stored_without_names_gets_them_on_the_scan_after_the_migration(
    listener, spotify_at_sandbox, enqueued
) -> None:
    ratelimit._limiters.clear()
    sandbox = spotify_at_sandbox
    assert scan_to_end(listener)["status"] == "succeeded"
    # As the rows looked before names were kept.
    LibraryTrack.objects.update(name="", album="")

    migration.reread_complete_sources(apps, None)
    sandbox.reset_stats()
    assert scan_to_end(listener, refresh=True)["status"] == "succeeded"

    # Read fully (600 liked songs, 50 a page), not the one page of an incremental read.
    assert route_count(sandbox.stats(), "GET /v1/me/tracks") == 12
    assert not LibraryTrack.objects.filter(name="").exists()
    track = LibraryTrack.objects.order_by("position").first()
    assert track.name == sandbox.state.find_track(track.track_id).name
    assert LibrarySource.objects.get(source="liked").complete
