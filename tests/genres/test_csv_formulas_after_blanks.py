"""A spreadsheet skips leading blanks before it looks for a formula, so the CSV export quotes
a cell whose first visible character starts one, whatever invisible characters come first."""

from __future__ import annotations

import pytest

from genres.pages import csv_cell
from tests.genres.test_pages import make_listener, make_result, signed_in
from tests.genres.test_pages_exports import csv_rows

BLANKS = {
    "a space": " ",
    "a newline": "\n",
    "a carriage return and a newline": "\r\n",
    "a tab": "\t",
    "a no-break space": "\u00a0",
    "a narrow no-break space": "\u202f",
    "a figure space": "\u2007",
    "an ideographic space": "\u3000",
    "a zero-width space": "\u200b",
    "a byte-order mark": "\ufeff",
    "spaces and a newline": "  \n ",
}
FORMULA_STARTS = ["=", "+", "-", "@"]


@pytest.mark.parametrize("blank", BLANKS.values(), ids=BLANKS.keys())
@pytest.mark.parametrize("start", FORMULA_STARTS)
def test_a_formula_after_leading_blanks_is_quoted(blank: str, start: str) -> None:
    text = f'{blank}{start}HYPERLINK("https://attacker.example")'
    assert csv_cell(text) == "'" + text


# A leading tab or carriage return is quoted whatever follows (OWASP's list), so the
# negative control leaves those two out.
HARMLESS_BLANKS = {name: blank for name, blank in BLANKS.items() if blank[0] not in "\t\r"}


@pytest.mark.parametrize("blank", HARMLESS_BLANKS.values(), ids=HARMLESS_BLANKS.keys())
def test_text_after_leading_blanks_is_left_as_it_is(blank: str) -> None:
    # The negative control: only a formula start is neutralised, not every leading blank.
    assert csv_cell(f"{blank}swedish pop") == f"{blank}swedish pop"


@pytest.mark.parametrize("text", ["post-punk", "a=b", "rock @ home", "k-pop+"])
def test_formula_characters_inside_a_name_are_left_as_they_are(text: str) -> None:
    assert csv_cell(text) == text


@pytest.mark.django_db
def test_the_export_quotes_a_genre_that_hides_a_formula_behind_a_no_break_space() -> None:
    name = "\u00a0=1+2"
    user = make_listener()
    make_result(user, [(name, 1)], tracks_per_genre={name: ["t1"]})
    rows = csv_rows(signed_in(user).get("/genres/export.csv"))
    assert rows[1][:3] == ["'" + name, "1", "t1"]
