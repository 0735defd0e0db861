"""The genre rule, as a pure function."""

from __future__ import annotations

from genres.aggregation import aggregate, summary

GENRES = {
    "a1": ["swedish pop", "pop"],
    "a2": ["pop", "indie rock"],
    "a3": [],
    "a4": ["<script>alert(1)</script>"],
}


def names(payload: dict) -> dict[str, list[str]]:
    return {genre["name"]: genre["trackIds"] for genre in payload["genres"]}


def test_a_track_belongs_to_every_genre_of_every_artist_counted_once_per_genre():
    payload = aggregate([("t1", ["a1", "a2"])], GENRES)

    assert names(payload) == {"pop": ["t1"], "swedish pop": ["t1"], "indie rock": ["t1"]}
    assert all(genre["count"] == 1 for genre in payload["genres"])


def test_tracks_without_an_id_are_skipped():
    payload = aggregate([(None, ["a1"]), ("", ["a2"]), ("t1", ["a4"])], GENRES)

    assert payload["totalTracks"] == 1
    assert payload["totalArtists"] == 1
    assert names(payload) == {"<script>alert(1)</script>": ["t1"]}


def test_tracks_whose_artists_have_no_genres_are_unclassified_not_dropped():
    payload = aggregate(
        [("t1", ["a3"]), ("t2", ["unknown-artist"]), ("t3", []), ("t4", ["a3", "a1"])], GENRES
    )

    assert payload["unclassified"] == {"count": 3, "trackIds": ["t1", "t2", "t3"]}
    assert payload["totalTracks"] == 4
    assert names(payload)["pop"] == ["t4"]


def test_genres_are_sorted_by_count_then_name():
    payload = aggregate(
        [("t1", ["a2"]), ("t2", ["a2"]), ("t3", ["a1"]), ("t4", ["a4"])],
        GENRES,
    )

    assert [(g["name"], g["count"]) for g in payload["genres"]] == [
        ("pop", 3),
        ("indie rock", 2),
        ("<script>alert(1)</script>", 1),
        ("swedish pop", 1),
    ]
    assert summary(payload) == [
        {"name": "pop", "count": 3},
        {"name": "indie rock", "count": 2},
        {"name": "<script>alert(1)</script>", "count": 1},
        {"name": "swedish pop", "count": 1},
    ]


def test_a_track_seen_in_two_sources_counts_once_with_the_artists_of_both():
    payload = aggregate([("t1", ["a1"]), ("t2", ["a3"]), ("t1", ["a2"])], GENRES)

    assert payload["totalTracks"] == 2
    assert names(payload) == {"pop": ["t1"], "indie rock": ["t1"], "swedish pop": ["t1"]}
    assert payload["unclassified"]["trackIds"] == ["t2"]


def test_totals_and_library_order_are_kept():
    tracks = [(f"t{n}", ["a1"]) for n in range(5)] + [("t9", ["a1", "a2"])]

    payload = aggregate(tracks, GENRES)

    assert payload["totalTracks"] == 6
    assert payload["totalArtists"] == 2
    assert payload["totalGenres"] == 3
    assert names(payload)["pop"] == ["t0", "t1", "t2", "t3", "t4", "t9"]
    assert payload["truncated"] is False


def test_nothing_is_capped_for_a_large_library():
    tracks = [(f"t{n}", [f"a{n % 3000}"]) for n in range(12_000)]
    genres = {f"a{n}": [f"genre {n % 900}"] for n in range(3000)}

    payload = aggregate(tracks, genres)

    assert payload["totalTracks"] == 12_000
    assert payload["totalGenres"] == 900
    assert sum(genre["count"] for genre in payload["genres"]) == 12_000
    assert payload["truncated"] is False


def test_truncated_is_reported_only_when_the_caller_cut_something():
    assert aggregate([], {}, truncated=True)["truncated"] is True
    assert aggregate([], {}) == {
        "truncated": False,
        "totalTracks": 0,
        "totalArtists": 0,
        "totalGenres": 0,
        "genres": [],
        "unclassified": {"count": 0, "trackIds": []},
    }
