"""The genres page for a big library, as the server renders it: grouped from 150 genres on,
the last playlist job and "Your playlists" kept across reloads, Create marked busy while a
job runs, a skip link to the form; and the home page's library card on its own."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from genres.models import GenrePlaylist, PlaylistJob
from genres.pages import COLLAPSE_FAMILIES_FROM
from genres.selectors import genre_playlists
from tests.genres.test_pages import (
    Markup,
    assert_csp_clean,
    large_summary,
    make_listener,
    make_result,
    signed_in,
)

pytestmark = pytest.mark.django_db


def result_entry(genre: str, status: str, total: int, playlist_id: str = "p1") -> dict[str, Any]:
    return {
        "genre": genre,
        "status": status,
        "playlistId": playlist_id,
        "url": f"https://open.spotify.com/playlist/{playlist_id}",
        "tracksAdded": total,
        "tracksTotal": total,
        "error": None,
    }


def test_a_big_library_opens_grouped_by_family_and_a_small_one_flat() -> None:
    big = make_listener("big")
    make_result(big, large_summary(COLLAPSE_FAMILIES_FROM))
    markup = assert_csp_clean(signed_in(big).get("/genres"))
    assert "checked" in markup.find("input", id="genre-group")[0]

    small = make_listener("small")
    make_result(small, large_summary(COLLAPSE_FAMILIES_FROM - 1))
    markup = assert_csp_clean(signed_in(small).get("/genres"))
    assert "checked" not in markup.find("input", id="genre-group")[0]


def test_the_page_has_a_heading_for_the_list_a_skip_link_and_a_selection_bar() -> None:
    user = make_listener()
    make_result(user, [("pop", 3), ("rock", 2)])
    markup = assert_csp_clean(signed_in(user).get("/genres"))
    skip = markup.find("a", id="skip-to-create")[0]
    assert skip["href"] == "#playlist-form"
    assert markup.find("form", id="playlist-form")
    assert markup.find("h2", id="genre-list-title")
    assert markup.find("button", id="select-shown")
    bar = markup.find("div", id="selection-bar")[0]
    assert bar["role"] == "region"
    assert markup.find("a", id="bar-create")[0]["href"] == "#playlist-form"
    # Headings go h1, then h2s: nothing skips a level.
    levels = [int(tag[1]) for tag, _ in markup.tags if tag in ("h1", "h2", "h3", "h4")]
    assert levels[0] == 1
    assert all(later - earlier <= 1 for earlier, later in itertools.pairwise(levels))


def test_the_last_finished_job_is_shown_after_a_reload() -> None:
    user = make_listener()
    make_result(user, [("pop", 3)])
    old = PlaylistJob.objects.create(user=user, genres=["pop"], status="succeeded")
    latest = PlaylistJob.objects.create(user=user, genres=["pop"], status="partial")
    PlaylistJob.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=1))
    markup = assert_csp_clean(signed_in(user).get("/genres"))
    assert markup.find("section", id="playlist-job")[0]["data-job-id"] == str(latest.id)
    assert "hidden" in markup.find("p", id="create-busy")[0]


def test_create_is_marked_busy_while_a_job_runs() -> None:
    user = make_listener()
    make_result(user, [("pop", 3)])
    PlaylistJob.objects.create(user=user, genres=["pop"], status="queued")
    markup = assert_csp_clean(signed_in(user).get("/genres"))
    assert "hidden" not in markup.find("p", id="create-busy")[0]
    assert "disabled" in markup.find("button", id="create-playlists")[0]


def test_your_playlists_lists_every_genre_playlist_with_link_count_and_date() -> None:
    user = make_listener()
    make_result(user, [("pop", 30), ("rock", 20)])
    now = timezone.now()
    for genre, playlist_id in [("pop", "p1"), ("rock", "p2")]:
        GenrePlaylist.objects.create(
            user=user,
            genre=genre,
            playlist_id=playlist_id,
            name=f"{genre} (from Likes)",
            url=f"https://open.spotify.com/playlist/{playlist_id}",
        )
    # A row whose create never finished is not a playlist yet.
    GenrePlaylist.objects.create(user=user, genre="jazz", name="jazz (from Likes)")
    PlaylistJob.objects.create(
        user=user,
        genres=["pop", "rock"],
        status="succeeded",
        finished_at=now - timedelta(days=2),
        results=[result_entry("pop", "created", 25), result_entry("rock", "created", 20, "p2")],
    )
    PlaylistJob.objects.create(
        user=user,
        genres=["pop"],
        status="succeeded",
        finished_at=now - timedelta(days=1),
        results=[result_entry("pop", "updated", 30)],
    )
    playlists = genre_playlists(user=user)
    assert [(p["genre"], p["tracks"]) for p in playlists] == [("pop", 30), ("rock", 20)]
    assert playlists[0]["filled_at"] == now - timedelta(days=1)

    markup = assert_csp_clean(signed_in(user).get("/genres"))
    assert markup.find("a", href="https://open.spotify.com/playlist/p1")
    rows = [
        attrs["data-genre"] for tag, attrs in markup.tags if tag == "tr" and "data-genre" in attrs
    ]
    assert rows == ["pop", "rock"]
    assert "jazz (from Likes)" not in markup.text


def test_your_playlists_never_links_outside_spotify() -> None:
    user = make_listener()
    GenrePlaylist.objects.create(
        user=user, genre="pop", playlist_id="p1", name="pop", url="https://evil.example/p1"
    )
    assert genre_playlists(user=user)[0]["url"] == ""


def test_another_listeners_playlists_are_never_listed() -> None:
    alice = make_listener("alice")
    bob = make_listener("bob")
    GenrePlaylist.objects.create(
        user=bob, genre="pop", playlist_id="p1", name="bob's pop", url="https://open.spotify.com/x"
    )
    assert genre_playlists(user=alice) == []


def test_the_library_card_alone_is_the_homes_card_with_the_new_result() -> None:
    user = make_listener()
    client = signed_in(user)
    before = Markup(client.get("/library-card").content.decode())
    assert "not scanned your library yet" in before.text
    make_result(user, [("pop", 1200), ("rock", 34)], unclassified=3, age=timedelta(0))
    response = client.get("/library-card")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    card = Markup(response.content.decode())
    assert card.find("section", id="library-card")
    assert "1,237 songs" in card.text
    assert "just now" in card.text
    # One way to the genres, never two.
    assert len(card.find("a", href="/genres")) == 1


def test_the_library_card_needs_a_listener(client: Client) -> None:
    assert client.get("/library-card").status_code == 401


def test_the_home_page_holds_the_same_card() -> None:
    user = make_listener()
    make_result(user, [("pop", 3)])
    home = assert_csp_clean(signed_in(user).get("/"))
    assert home.find("section", id="library-card")
    assert len(home.find("a", href="/genres")) == 2  # the header's link and the card's
