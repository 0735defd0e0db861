"""The listener pages: home and genres, rendered by the Django test client.

Rows are built directly (account, scan, result) so each test states exactly what the listener
has; the pages must show it, in words, safely escaped and under the strict CSP.
"""

from __future__ import annotations

import json
import statistics
import time
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from genres.models import PlaylistJob, Scan, ScanResult, SpotifyAccount

# The SLA's time to first byte for pages.
PAGE_BUDGET_SECONDS = 0.1

HOSTILE_NAMES = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "{genre}",
    "' onmouseover='alert(1)",
)


# --- Builders (imported by the other page test modules) -------------------------------------


def make_listener(username: str = "listener", *, needs_reauth: bool = False) -> Any:
    user = get_user_model().objects.create_user(username)
    SpotifyAccount.objects.create(
        user=user,
        spotify_id=f"spotify-{username}",
        display_name=f"{username.title()} Listener",
        needs_reauth=needs_reauth,
    )
    return user


def make_scan(user: Any, **fields: Any) -> Scan:
    values: dict[str, Any] = {
        "status": Scan.Status.SUCCEEDED,
        "step": Scan.Step.DONE,
        "sources": ["liked"],
        "started_at": timezone.now(),
    }
    values.update(fields)
    return Scan.objects.create(user=user, **values)


def make_result(
    user: Any,
    genres: list[tuple[str, int]] | None = None,
    *,
    unclassified: int = 0,
    truncated: bool = False,
    age: timedelta = timedelta(minutes=5),
    tracks_per_genre: dict[str, list[str]] | None = None,
) -> ScanResult:
    """A successful scan and its result; genres as (name, count), sorted like the contract."""
    genres = sorted(genres or [], key=lambda item: (-item[1], item[0]))
    tracks_per_genre = tracks_per_genre or {}
    scan = make_scan(user, finished_at=timezone.now() - age)
    track_ids = {
        name: tracks_per_genre.get(
            name, [f"{index:03d}{name[:3]}track"[:22] for index in range(count)]
        )
        for name, count in genres
    }
    unclassified_ids = tracks_per_genre.get(
        "", [f"un{index:020d}" for index in range(unclassified)]
    )
    payload = {
        "schemaVersion": 1,
        "scanId": str(scan.id),
        "cachedAt": (timezone.now() - age).isoformat().replace("+00:00", "Z"),
        "truncated": truncated,
        "totalTracks": sum(count for _, count in genres) + unclassified,
        "totalArtists": len(genres) * 2,
        "totalGenres": len(genres),
        "genres": [
            {"name": name, "count": count, "trackIds": track_ids[name]} for name, count in genres
        ],
        "unclassified": {"count": unclassified, "trackIds": unclassified_ids},
    }
    result = ScanResult.objects.create(
        scan=scan,
        user=user,
        total_tracks=payload["totalTracks"],
        total_artists=payload["totalArtists"],
        total_genres=len(genres),
        unclassified_count=unclassified,
        truncated=truncated,
        summary=[{"name": name, "count": count} for name, count in genres],
        payload=payload,
    )
    ScanResult.objects.filter(pk=result.pk).update(created_at=timezone.now() - age)
    result.refresh_from_db()
    return result


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


class Markup(HTMLParser):
    """Collects every start tag with its attributes, and the text of inline scripts/styles."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline_code: list[tuple[str, str]] = []
        self._open: str | None = None
        self.text_parts: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._open = tag

    def handle_endtag(self, tag: str) -> None:
        if tag == self._open:
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open and data.strip():
            self.inline_code.append((self._open, data))
        self.text_parts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.text_parts).split())

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [
            found
            for name, found in self.tags
            if name == tag and all(found.get(key) == value for key, value in attrs.items())
        ]


def assert_csp_clean(response: Any) -> Markup:
    """The strict CSP header is set and the page needs nothing it forbids."""
    policy = response["Content-Security-Policy"]
    assert "script-src 'self' 'nonce-" in policy
    assert "unsafe-inline" not in policy
    markup = Markup(response.content.decode())
    for tag, attrs in markup.tags:
        assert "style" not in attrs, f"inline style attribute on <{tag}>"
        handlers = [name for name in attrs if name.startswith("on")]
        assert not handlers, f"inline handler {handlers} on <{tag}>"
        if tag == "script":
            assert attrs.get("src"), "inline <script> without src"
        assert tag != "style", "inline <style> element"
        for name in ("href", "src", "action"):
            assert not (attrs.get(name) or "").strip().lower().startswith("javascript:")
    assert not markup.inline_code
    return markup


# --- Home -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_signed_out_home_explains_swedify_and_offers_spotify_sign_in(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    markup = assert_csp_clean(response)
    assert "sorted by genre" in markup.text
    assert markup.find("a", href="/auth/spotify")
    assert "Sign in with Spotify" in markup.text
    assert not markup.find("form", action="/auth/logout")


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("spotify_denied", "You chose not to give Swedify access"),
        ("invalid_state", "sign-in link had expired or was already used"),
        ("invalid_request", "incomplete sign-in answer"),
        ("spotify_auth_failed", "Spotify did not complete the sign-in"),
        ("something_else", "The sign-in did not complete"),
    ],
)
@pytest.mark.django_db
def test_each_sign_in_error_is_shown_in_words_with_try_again(
    client: Client, key: str, words: str
) -> None:
    response = client.get("/", {"error": key})
    markup = assert_csp_clean(response)
    assert words in markup.text
    alert = [attrs for tag, attrs in markup.tags if attrs.get("role") == "alert"]
    assert alert
    assert markup.find("a", href="/auth/spotify")
    assert "Try again" in markup.text
    assert key not in markup.text  # the raw key is for programs, not for people


@pytest.mark.django_db
def test_a_hostile_error_key_is_not_echoed(client: Client) -> None:
    response = client.get("/", {"error": "<script>alert(1)</script>"})
    assert b"<script>alert(1)" not in response.content
    assert "The sign-in did not complete" in Markup(response.content.decode()).text


@pytest.mark.django_db
def test_the_signed_in_home_shows_the_library_and_the_scan_form() -> None:
    user = make_listener()
    make_result(user, [("swedish pop", 1200), ("indie rock", 30)], unclassified=4)
    response = signed_in(user).get("/")
    markup = assert_csp_clean(response)
    assert "Listener Listener" in markup.text
    assert "5 minutes ago" in markup.text
    assert "1,234 songs" in markup.text
    assert "2 genres" in markup.text
    assert markup.find("a", href="/genres")
    assert markup.find("form", id="scan-form")
    assert "Rescan" in markup.text
    # Signing out is a POST with the CSRF token, never a link.
    logout = markup.find("form", action="/auth/logout")
    assert logout
    assert logout[0]["method"] == "post"
    assert markup.find("input", name="csrfmiddlewaretoken")


@pytest.mark.django_db
def test_a_listener_without_a_scan_is_invited_to_scan() -> None:
    user = make_listener()
    markup = assert_csp_clean(signed_in(user).get("/"))
    assert "not scanned your library yet" in markup.text
    assert "Scan my library" in markup.text
    panel = markup.find("section", id="scan-status")[0]
    assert "hidden" in panel


@pytest.mark.django_db
def test_a_running_scan_shows_its_step_and_counts_for_the_script_to_poll() -> None:
    user = make_listener()
    scan = make_scan(
        user,
        status=Scan.Status.RUNNING,
        step=Scan.Step.FETCHING_ARTISTS,
        tracks_total=10000,
        tracks_found=10000,
        artists_to_fetch=3100,
        artists_fetched=800,
        sources=["liked", "playlist:abc123abc123"],
    )
    markup = assert_csp_clean(signed_in(user).get("/"))
    panel = markup.find("section", id="scan-status")[0]
    assert panel["data-scan-id"] == str(scan.id)
    assert panel["data-scan-status"] == "running"
    assert json.loads(panel["data-sources"]) == ["liked", "playlist:abc123abc123"]
    assert "hidden" not in panel
    assert "Looking up the artists' genres" in markup.text
    assert "10,000 of 10,000 songs read · 800 of 3,100 artists looked up" in markup.text
    # One bar across all steps: the profile, 200 pages and 800 of 3,100 artists are done.
    progress = markup.find("progress")[0]
    assert (progress["value"], progress["max"]) == (str(100 * 1001 // 3301), "100")
    assert "Only artists whose genres Swedify does not know yet are looked up" in markup.text
    # The form starts from what the last scan read.
    assert "abc123abc123" in markup.text


@pytest.mark.django_db
def test_a_paused_scan_says_when_it_resumes() -> None:
    user = make_listener()
    resume_at = timezone.now() + timedelta(minutes=30)
    make_scan(
        user,
        status=Scan.Status.PAUSED,
        step=Scan.Step.FETCHING_ARTISTS,
        resume_at=resume_at,
        error={
            "error": "Spotify's daily quota is used up",
            "details": "429: QUOTA_EXCEEDED",
            "step": "fetching_artists",
            "tracksFound": 500,
            "artistsToFetch": 200,
        },
    )
    markup = assert_csp_clean(signed_in(user).get("/"))
    assert "Scan paused" in markup.text
    assert "continues by itself" in markup.text
    assert resume_at.strftime("%H:%M") in markup.text
    assert "in about 30 min" in markup.text
    assert "429: QUOTA_EXCEEDED" in markup.text


@pytest.mark.django_db
def test_a_failed_scan_shows_the_seed_error_in_words_with_try_again_and_reconnect() -> None:
    user = make_listener()
    make_scan(
        user,
        status=Scan.Status.FAILED,
        step=Scan.Step.FETCHING_ARTISTS,
        error={
            "error": "Failed to fetch artist data from Spotify",
            "details": "503: Service Unavailable",
            "step": "fetching_artists",
            "tracksFound": 500,
            "artistsToFetch": 200,
        },
    )
    markup = assert_csp_clean(signed_in(user).get("/"))
    assert (
        "Failed to fetch artist data from Spotify (503: Service Unavailable) while looking up "
        "the artists' genres. By then: 500 songs found, 200 artists to look up."
    ) in markup.text
    assert "Try again" in markup.text
    assert markup.find("a", href="/auth/spotify")
    assert "Reconnect Spotify" in markup.text


@pytest.mark.django_db
def test_a_listener_spotify_no_longer_honours_is_asked_to_reconnect() -> None:
    user = make_listener(needs_reauth=True)
    markup = assert_csp_clean(signed_in(user).get("/"))
    assert "sign in again" in markup.text
    assert markup.find("a", href="/auth/spotify")
    assert "Reconnect Spotify" in markup.text
    assert markup.find("form", action="/auth/logout")


@pytest.mark.django_db
def test_the_home_page_of_an_empty_library_is_friendly() -> None:
    user = make_listener()
    make_result(user, [])
    markup = assert_csp_clean(signed_in(user).get("/"))
    assert "No liked songs yet" in markup.text


# --- Genres page ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_genres_page_needs_a_signed_in_listener(client: Client) -> None:
    response = client.get("/genres")
    assert response.status_code == 302
    assert response["Location"] == "/?notice=sign_in_required"
    staff_without_spotify = get_user_model().objects.create_user("operator")
    response = signed_in(staff_without_spotify).get("/genres")
    assert response.status_code == 302
    assert response["Location"] == "/?notice=sign_in_required"


def genre_rows(markup: Markup) -> list[tuple[str, str, str]]:
    """(name, count, family) of the listed genres, in page order."""
    rows = []
    for tag, attrs in markup.tags:
        if tag == "li" and "genre-row" in (attrs.get("class") or ""):
            rows.append((attrs["data-count"], attrs["data-family"]))
    names = [attrs["value"] for attrs in markup.find("input", **{"class": "js-genre"})]
    return [(name, count, family) for name, (count, family) in zip(names, rows, strict=False)]


@pytest.mark.django_db
def test_the_genres_page_lists_every_genre_with_its_count_most_first() -> None:
    user = make_listener()
    make_result(
        user,
        [("indie rock", 30), ("swedish pop", 120), ("ambient", 30), ("hip hop", 45)],
        unclassified=7,
    )
    response = signed_in(user).get("/genres")
    assert response.status_code == 200
    markup = assert_csp_clean(response)
    assert genre_rows(markup) == [
        ("swedish pop", "120", "pop"),
        ("hip hop", "45", "hip hop"),
        ("ambient", "30", "electronic"),
        ("indie rock", "30", "rock"),
    ]
    assert "Unclassified" in markup.text
    unclassified = markup.find("input", value="Unclassified")
    assert unclassified
    assert "disabled" not in unclassified[0]
    assert "Songs whose artists have no genre on Spotify" in markup.text
    assert "Result from 5 minutes ago" in markup.text
    assert markup.find("button", **{"class": "link-button js-refresh"})
    assert "up to 50 at a time" in markup.text
    assert markup.find("input", id="name-pattern")[0]["value"] == "{genre} (from Likes)"
    assert "checked" in markup.find("input", name="skipDuplicates")[0]
    browser = markup.find("section", id="genre-browser")[0]
    families = json.loads(browser["data-families"])
    assert [family for family, _ in families] == ["pop", "rock", "electronic", "hip hop"]
    assert browser["data-max"] == "50"
    assert markup.find("a", href="/genres/export.csv")
    assert markup.find("a", href="/genres/export.json")


@pytest.mark.django_db
def test_the_genres_page_sorts_a_summary_stored_in_another_order() -> None:
    user = make_listener()
    result = make_result(user, [("a", 1)])
    result.summary = [
        {"name": "b", "count": 2},
        {"name": "z", "count": 9},
        {"name": "a", "count": 2},
    ]
    result.save(update_fields=["summary"])
    markup = assert_csp_clean(signed_in(user).get("/genres"))
    assert [name for name, _, _ in genre_rows(markup)] == ["z", "a", "b"]


@pytest.mark.django_db
def test_a_real_genre_named_unclassified_keeps_the_unclassified_row_out_of_selection() -> None:
    user = make_listener()
    make_result(user, [("Unclassified", 3)], unclassified=2)
    markup = assert_csp_clean(signed_in(user).get("/genres"))
    boxes = markup.find("input", value="Unclassified")
    assert len(boxes) == 2
    assert "disabled" not in boxes[0]
    assert "disabled" in boxes[1]


@pytest.mark.django_db
def test_a_truncated_result_says_so() -> None:
    user = make_listener()
    make_result(user, [("pop", 3)], truncated=True)
    markup = assert_csp_clean(signed_in(user).get("/genres"))
    assert "This result is incomplete" in markup.text


@pytest.mark.django_db
def test_a_complete_result_has_no_truncated_notice() -> None:
    user = make_listener()
    make_result(user, [("pop", 3)])
    markup = assert_csp_clean(signed_in(user).get("/genres"))
    assert "incomplete" not in markup.text


@pytest.mark.django_db
def test_an_empty_library_gets_a_friendly_empty_state() -> None:
    user = make_listener()
    make_result(user, [])
    markup = assert_csp_clean(signed_in(user).get("/genres"))
    assert "Nothing to sort yet" in markup.text
    assert "found no liked songs" in markup.text
    assert not markup.find("form", id="playlist-form")


@pytest.mark.django_db
def test_a_library_with_only_unclassified_tracks_still_lists_them() -> None:
    user = make_listener()
    make_result(user, [], unclassified=12)
    markup = assert_csp_clean(signed_in(user).get("/genres"))
    assert "Nothing to sort yet" not in markup.text
    assert markup.find("input", value="Unclassified")


@pytest.mark.django_db
def test_before_the_first_scan_the_genres_page_points_to_scanning() -> None:
    user = make_listener()
    markup = assert_csp_clean(signed_in(user).get("/genres"))
    assert "No genres yet" in markup.text
    assert markup.find("a", href="/")
    assert "Result from" not in markup.text


@pytest.mark.django_db
def test_a_running_rescan_is_shown_on_the_genres_page_with_the_old_result() -> None:
    user = make_listener()
    make_result(user, [("pop", 3)], age=timedelta(hours=3))
    scan = make_scan(
        user, status=Scan.Status.RUNNING, step=Scan.Step.FETCHING_TRACKS, tracks_found=50
    )
    markup = assert_csp_clean(signed_in(user).get("/genres"))
    assert "Result from 3 hours ago" in markup.text
    panel = markup.find("section", id="scan-status")[0]
    assert panel["data-scan-id"] == str(scan.id)
    assert "Reading your songs" in markup.text
    assert "looking up their artists" not in markup.text

    # Artists already being looked up while the songs are read: the page says both.
    Scan.objects.filter(pk=scan.pk).update(artists_to_fetch=40, artists_fetched=10)
    markup = assert_csp_clean(signed_in(user).get("/genres"))
    assert "Reading your songs and looking up their artists" in markup.text
    assert "10 of 40 artists" in markup.text


@pytest.mark.django_db
def test_a_playlist_job_in_progress_is_picked_up_by_the_page() -> None:
    user = make_listener()
    make_result(user, [("pop", 3)])
    job = PlaylistJob.objects.create(user=user, genres=["pop"], status=PlaylistJob.Status.RUNNING)
    PlaylistJob.objects.create(user=user, genres=["pop"], status=PlaylistJob.Status.SUCCEEDED)
    markup = assert_csp_clean(signed_in(user).get("/genres"))
    assert markup.find("section", id="playlist-job")[0]["data-job-id"] == str(job.id)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
@pytest.mark.django_db
def test_hostile_genre_names_render_as_text(name: str) -> None:
    user = make_listener()
    make_result(user, [(name, 5), ("pop", 1)])
    response = signed_in(user).get("/genres")
    html = response.content.decode()
    markup = assert_csp_clean(response)
    assert not markup.find("img")
    assert name not in html or name == "{genre}"
    # The parsed page holds the name exactly, as a value and as text.
    assert markup.find("input", value=name)
    assert name in markup.text


@pytest.mark.django_db
def test_hostile_names_are_escaped_on_the_home_page_too() -> None:
    user = get_user_model().objects.create_user("mallory")
    SpotifyAccount.objects.create(
        user=user, spotify_id="mallory", display_name='<script>alert("x")</script>'
    )
    response = signed_in(user).get("/")
    assert b'<script>alert("x")' not in response.content
    assert '<script>alert("x")</script>' in assert_csp_clean(response).text


@pytest.mark.django_db
def test_another_listeners_genres_are_never_shown() -> None:
    alice = make_listener("alice")
    bob = make_listener("bob")
    make_result(alice, [("alice only genre", 9)])
    make_result(bob, [("bob only genre", 4)])
    bob_scan = make_scan(bob, status=Scan.Status.RUNNING, step=Scan.Step.FETCHING_TRACKS)
    PlaylistJob.objects.create(user=bob, genres=["bob only genre"], status="running")
    html = signed_in(alice).get("/genres").content.decode()
    assert "alice only genre" in html
    assert "bob only genre" not in html
    assert str(bob_scan.id) not in html
    home = signed_in(alice).get("/").content.decode()
    assert str(bob_scan.id) not in home
    assert "Bob Listener" not in home


def large_summary(genres: int = 1000, tracks: int = 10000) -> list[tuple[str, int]]:
    return [(f"genre number {index} pop", max(1, tracks // (index + 1))) for index in range(genres)]


@pytest.mark.django_db
def test_the_genres_page_of_a_large_library_takes_a_bounded_number_of_queries(
    django_assert_max_num_queries: Any,
) -> None:
    user = make_listener()
    make_result(user, large_summary(), unclassified=35)
    client = signed_in(user)
    with django_assert_max_num_queries(8):
        response = client.get("/genres")
    assert response.status_code == 200
    assert response.content.count(b'class="genre-row"') == 1000


@pytest.mark.django_db
def test_the_signed_in_home_takes_a_bounded_number_of_queries(
    django_assert_max_num_queries: Any,
) -> None:
    user = make_listener()
    make_result(user, large_summary(200))
    client = signed_in(user)
    with django_assert_max_num_queries(8):
        assert client.get("/").status_code == 200


@pytest.mark.parametrize("path", ["/", "/genres"])
@pytest.mark.django_db
def test_pages_never_load_the_track_ids_of_a_result(path: str) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    user = make_listener()
    make_result(user, large_summary(50))
    client = signed_in(user)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path).status_code == 200
    selected = " ".join(query["sql"] for query in queries.captured_queries)
    assert "genres_scanresult" in selected
    assert '"genres_scanresult"."payload"' not in selected


@pytest.mark.django_db
def test_the_genres_page_of_a_thousand_genres_renders_well_under_100_ms() -> None:
    user = make_listener()
    make_result(user, large_summary(), unclassified=35)
    client = signed_in(user)
    client.get("/genres")  # warm the template and family caches
    timings = []
    for _ in range(9):
        # This thread's CPU time, not the wall clock: other processes on a loaded machine do
        # not count, an N+1 or quadratic page still does (the page runs in this thread, on
        # SQLite with its queries too). The wall-clock TTFB is `make bench`'s to measure.
        started = time.thread_time()
        assert client.get("/genres").status_code == 200
        timings.append(time.thread_time() - started)
    assert statistics.median(timings) < PAGE_BUDGET_SECONDS, timings


@pytest.mark.parametrize("path", ["/", "/genres", "/genres/export.csv", "/genres/export.json"])
@pytest.mark.django_db
def test_a_listeners_pages_are_never_cached_by_anyone_else(path: str) -> None:
    user = make_listener()
    make_result(user, [("pop", 1)])
    response = signed_in(user).get(path)
    assert response.status_code == 200
    assert "private" in response["Cache-Control"]
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
def test_pages_answer_head_requests(client: Client) -> None:
    assert client.head("/").status_code == 200
