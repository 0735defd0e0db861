"""Song and album names are untrusted text: what a scan keeps of them (genres.track_names)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from genres.scan_runner import _ScanRun
from genres.track_names import NAME_MAX_LENGTH, clean_name, track_names


def item(name: object = "Dancing Queen", album: object = "Arrival") -> dict:
    return {"track": {"id": "t1", "name": name, "album": {"name": album}, "artists": []}}


def test_a_plain_name_is_kept_as_spotify_gave_it() -> None:
    assert clean_name("Rock'n'Roll Ödmjuk (feat. <b>&</b>) =1+1") == (
        "Rock'n'Roll Ödmjuk (feat. <b>&</b>) =1+1"
    )


def test_nul_and_other_control_characters_are_dropped() -> None:
    assert clean_name("Da\x00nc\x1bing\x7f Qu\x9feen") == "Dancing Queen"


def test_line_breaks_and_tabs_become_one_blank_between_words() -> None:
    assert clean_name("Dancing\r\nQueen\tLive\u2028Mix") == "Dancing Queen Live Mix"


def test_a_lone_surrogate_is_dropped_so_the_name_encodes_as_utf_8() -> None:
    name = clean_name("Fire\ud800 Snow")
    assert name == "Fire Snow"
    name.encode("utf-8")  # would raise on a surrogate


def test_a_long_name_is_cut_to_the_columns_length() -> None:
    name = clean_name("å" * (NAME_MAX_LENGTH + 100))
    assert name == "å" * NAME_MAX_LENGTH


def test_a_name_cut_after_a_blank_does_not_end_in_it() -> None:
    assert clean_name("a" * (NAME_MAX_LENGTH - 1) + " tail") == "a" * (NAME_MAX_LENGTH - 1)


@pytest.mark.parametrize("value", [None, 42, ["x"], {"name": "x"}])
def test_a_name_that_is_not_text_is_empty(value: object) -> None:
    assert clean_name(value) == ""


def test_an_items_song_and_album_names_are_read_from_its_track() -> None:
    assert track_names(item()) == ("Dancing Queen", "Arrival")


@pytest.mark.parametrize(
    "broken",
    [
        {"track": None},
        {},
        {"track": {"id": "t1", "name": "Song"}},
        {"track": {"id": "t1", "name": "Song", "album": None}},
        {"track": {"id": "t1", "name": "Song", "album": "not an object"}},
    ],
)
def test_an_item_without_an_album_object_still_gives_its_song_name(broken: dict) -> None:
    expected = "Song" if broken.get("track") else ""
    assert track_names(broken) == (expected, "")


def test_the_scans_rows_carry_the_cleaned_names() -> None:
    run = SimpleNamespace(scan=SimpleNamespace(user_id=7))
    items = [
        item("=cmd\x00\nnext", "x" * 600),
        item("Local file"),  # no id below: skipped like every local file
    ]
    items[1]["track"]["id"] = None

    rows = _ScanRun._rows(run, "liked", items, first_position=0, seen=None)

    assert [(row.track_id, row.name, row.album) for row in rows] == [
        ("t1", "=cmd next", "x" * NAME_MAX_LENGTH)
    ]
