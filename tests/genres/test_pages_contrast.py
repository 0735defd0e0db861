"""The listener pages' colours reach WCAG AA: contrast ratios computed from site.css itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = Path(__file__).resolve().parents[2] / "static" / "swedify" / "site.css"
# WCAG 2.1: normal text 4.5:1 (1.4.3), user-interface components and graphics 3:1 (1.4.11).
TEXT = 4.5
COMPONENT = 3.0


def css_without_comments() -> str:
    return re.sub(r"/\*.*?\*/", "", CSS.read_text(), flags=re.DOTALL)


def variables() -> dict[str, str]:
    root = re.search(r":root\s*\{(.*?)\}", css_without_comments(), re.DOTALL)
    assert root, "site.css has no :root block"
    return dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{3,6})", root.group(1)))


def luminance(colour: str) -> float:
    value = colour.lstrip("#")
    if len(value) == 3:
        value = "".join(ch * 2 for ch in value)
    channels = [int(value[index : index + 2], 16) / 255 for index in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(first: str, second: str) -> float:
    high, low = sorted((luminance(first), luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_contrast_formula_matches_known_ratios() -> None:
    assert contrast("#000", "#fff") == pytest.approx(21.0)
    assert contrast("#fff", "#1db954") == pytest.approx(2.58, abs=0.02)  # the figure
    assert contrast("#148a3d", "#fafafa") == pytest.approx(4.25, abs=0.01)


# (foreground, background, minimum): every pairing the stylesheet uses.
PAIRS = [
    ("fg", "bg", TEXT),
    ("fg", "card", TEXT),
    ("fg", "row-alt", TEXT),
    ("fg", "warn-bg", TEXT),
    ("fg", "error-bg", TEXT),
    ("muted", "bg", TEXT),
    ("muted", "card", TEXT),
    ("muted", "row-alt", TEXT),
    ("muted", "warn-bg", TEXT),
    ("on-accent", "accent", TEXT),  # button text
    ("on-accent", "accent-dark", TEXT),  # button text on hover
    ("on-accent", "error-line", TEXT),  # the danger button
    ("accent-dark", "bg", TEXT),  # links
    ("accent-dark", "card", TEXT),
    ("accent-dark", "error-bg", TEXT),
    ("accent-dark", "warn-bg", TEXT),
    ("accent-dark", "row-alt", TEXT),
    ("error-line", "card", TEXT),  # form messages, failed result rows
    ("error-line", "error-bg", TEXT),
    ("disabled-fg", "disabled-bg", TEXT),  # exempt in WCAG, readable anyway
    ("accent", "card", COMPONENT),  # buttons and the progress bar against the page
    ("accent", "bg", COMPONENT),
    ("focus", "card", COMPONENT),
    ("focus", "bg", COMPONENT),
]


@pytest.mark.parametrize(("foreground", "background", "minimum"), PAIRS)
def test_each_colour_pairing_of_the_stylesheet_reaches_aa(
    foreground: str, background: str, minimum: float
) -> None:
    colours = variables()
    ratio = contrast(colours[foreground], colours[background])
    assert ratio >= minimum, (
        f"--{foreground} {colours[foreground]} on --{background} {colours[background]}: "
        f"{ratio:.2f}:1, needs {minimum}:1"
    )


def test_spotify_green_is_used_for_nothing_that_must_be_read() -> None:
    assert "#1db954" not in css_without_comments().lower()


def test_text_colours_outside_the_variables_are_few_and_pass() -> None:
    """Literal colours in rules (not variables) are checked against white, where they sit."""
    rules = re.sub(r":root\s*\{.*?\}", "", css_without_comments(), flags=re.DOTALL)
    literals = re.findall(r"(?<![-\w])color:\s*(#[0-9a-fA-F]{3,6})", rules)
    for colour in literals:
        assert contrast(colour, "#fff") >= TEXT, colour
