"""The shared artist cache: Redis (Django's cache) in front of the Artist table."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone

from genres import artists
from genres.artists import ARTIST_MAX_AGE, CACHE_KEY, artists_lookup, artists_store
from genres.models import Artist
from swedify.cache import cache_clear_own

pytestmark = pytest.mark.django_db


def spotify_artist(artist_id: str, *genres: str, name: str = "Someone") -> dict[str, Any]:
    return {"id": artist_id, "name": name, "genres": list(genres), "images": []}


def test_stored_artists_are_in_the_database_and_the_cache():
    artists_store({"a1": spotify_artist("a1", "pop", "swedish pop"), "a2": None})

    assert Artist.objects.get(pk="a1").genres == ["pop", "swedish pop"]
    assert Artist.objects.get(pk="a2").genres == []
    value = cache.get(CACHE_KEY.format("a1"))
    assert value["v"] == 1
    assert value["name"] == "Someone"
    assert value["genres"] == ["pop", "swedish pop"]
    assert value["at"]


def test_a_harvest_of_full_artist_objects_is_stored_too():
    stored = artists_store([spotify_artist("a1", "jazz"), {"name": "no id"}, "junk"])

    assert [info.id for info in stored] == ["a1"]
    assert artists_lookup(["a1"])["a1"].genres == ("jazz",)


def test_the_cache_answers_without_the_database(django_assert_num_queries):
    artists_store([spotify_artist("a1", "pop")])

    with django_assert_num_queries(0):
        found = artists_lookup(["a1"])

    assert found["a1"].genres == ("pop",)


def test_a_cache_miss_falls_back_to_the_database_and_warms_the_cache():
    artists_store([spotify_artist("a1", "pop")])
    cache_clear_own()

    assert artists_lookup(["a1", "unknown"])["a1"].genres == ("pop",)
    assert "unknown" not in artists_lookup(["unknown"])
    assert cache.get(CACHE_KEY.format("a1"))["genres"] == ["pop"]


def test_an_artist_older_than_the_maximum_age_is_unknown_so_it_is_fetched_again():
    old = timezone.now() - ARTIST_MAX_AGE - timedelta(hours=1)
    artists_store([spotify_artist("a1", "pop")], now=old)

    assert artists_lookup(["a1"]) == {}
    cache_clear_own()
    assert artists_lookup(["a1"]) == {}


def test_readers_tolerate_missing_and_unknown_fields():
    cache.set(CACHE_KEY.format("a1"), {"genres": ["pop"], "future": {"x": 1}, "v": 2})
    cache.set(CACHE_KEY.format("a2"), {"v": 1, "name": "no genres field"})
    cache.set(CACHE_KEY.format("a3"), "garbage")

    found = artists_lookup(["a1", "a2", "a3"])

    assert found["a1"].genres == ("pop",)
    assert found["a1"].name == ""
    assert "a2" not in found
    assert "a3" not in found


def test_a_failing_cache_read_falls_back_to_the_database(monkeypatch):
    artists_store([spotify_artist("a1", "pop")])

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(artists.cache, "get_many", broken)
    monkeypatch.setattr(artists.cache, "set_many", broken)

    assert artists_lookup(["a1"])["a1"].genres == ("pop",)


def test_a_failing_cache_write_is_logged_and_the_database_still_has_the_artist(monkeypatch, caplog):
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(artists.cache, "set_many", broken)

    artists_store([spotify_artist("a1", "pop")])

    assert Artist.objects.get(pk="a1").genres == ["pop"]
    assert "artist cache write failed" in caplog.text


def test_a_restore_updates_genres_and_the_fetch_time():
    artists_store([spotify_artist("a1", "pop")], now=timezone.now() - timedelta(days=40))

    artists_store([spotify_artist("a1", "rock", name="Renamed")])

    row = Artist.objects.get(pk="a1")
    assert row.genres == ["rock"]
    assert row.name == "Renamed"
    assert row.fetched_at > timezone.now() - timedelta(minutes=1)
