"""A scan's step travels in words with its JSON ("stepLabel"), so the page script shows the
same words as the server-rendered page without keeping a copy of them."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from genres.models import Scan
from genres.selectors import READING_AND_LOOKING_UP, STEP_LABELS, scan_json

pytestmark = pytest.mark.django_db

SCRIPT = Path(__file__).resolve().parents[2] / "static" / "swedify" / "swedify.js"


@pytest.fixture
def user():
    return get_user_model().objects.create_user("spotify:alice")


def test_the_scan_json_says_the_step_in_words(user):
    scan = Scan.objects.create(user=user, step=Scan.Step.FETCHING_ARTISTS)

    assert scan_json(scan)["step"] == "fetching_artists"
    assert scan_json(scan)["stepLabel"] == "Looking up the artists' genres"


def test_reading_pages_while_artists_are_looked_up_says_both(user):
    reading = Scan.objects.create(user=user, step=Scan.Step.FETCHING_TRACKS)
    assert scan_json(reading)["stepLabel"] == "Reading your songs"

    reading.artists_to_fetch = 40
    assert scan_json(reading)["stepLabel"] == READING_AND_LOOKING_UP


def test_a_failed_scans_error_names_its_step_in_words_and_keeps_its_fields(user):
    error = {"error": "Failed", "details": "503", "step": "fetching_tracks", "tracksFound": 3}
    scan = Scan.objects.create(user=user, status=Scan.Status.FAILED, error=error)

    assert scan_json(scan)["error"] == {**error, "stepLabel": "Reading your songs"}
    scan.refresh_from_db()
    assert scan.error == error  # words are added to the answer, never stored


def test_an_error_without_a_known_step_is_answered_as_stored(user):
    for error in (None, "text", {"error": "Failed"}, {"error": "Failed", "step": "elsewhere"}):
        scan = Scan(user=user, status=Scan.Status.FAILED, error=error)
        assert scan_json(scan)["error"] == error


def test_the_page_script_keeps_no_copy_of_the_step_words():
    script = SCRIPT.read_text()

    assert "stepLabel" in script
    for words in [*STEP_LABELS.values(), READING_AND_LOOKING_UP]:
        if words != "Done":
            assert words not in script
