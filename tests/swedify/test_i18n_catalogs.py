"""The committed Swedish catalogs: every message translated, none fuzzy, placeholders kept,
and each compiled .mo exactly its .po (a forgotten `make messages` fails here)."""

from __future__ import annotations

import re
from pathlib import Path

import polib
import pytest
from django.conf import settings

MESSAGES = Path(settings.BASE_DIR) / "locale" / "sv" / "LC_MESSAGES"
DOMAINS = ["django", "djangojs"]
# %(name)s, %s, %d ... (python-format and javascript-format; interpolate() takes both).
PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[sdif]|\{[a-z_]+\}")


def _catalog(domain: str) -> polib.POFile:
    path = MESSAGES / f"{domain}.po"
    assert path.is_file(), f"{path} is missing: run `make messages`"
    return polib.pofile(str(path))


def _entries(catalog: polib.POFile | polib.MOFile) -> dict[tuple[str, str, str], object]:
    return {
        (entry.msgctxt or "", entry.msgid, entry.msgid_plural or ""): (
            entry.msgstr_plural and {int(k): v for k, v in entry.msgstr_plural.items()}
        )
        or entry.msgstr
        for entry in catalog
        if not entry.obsolete
    }


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_swedish_message_is_translated_and_none_is_fuzzy(domain: str) -> None:
    catalog = _catalog(domain)
    assert catalog.metadata["Language"] == "sv"
    assert not catalog.metadata_is_fuzzy
    assert len(catalog) > 0
    assert [entry.msgid for entry in catalog.untranslated_entries()] == []
    assert [entry.msgid for entry in catalog.fuzzy_entries()] == []


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_translation_keeps_its_placeholders(domain: str) -> None:
    """A Swedish message missing a %(name)s (or with one the English lacks) would fail or
    show the wrong number on the page."""
    mismatched = []
    for entry in _catalog(domain).translated_entries():
        if entry.msgid_plural:
            pairs = [(entry.msgid_plural, text) for text in entry.msgstr_plural.values()]
        else:
            pairs = [(entry.msgid, entry.msgstr)]
        for english, swedish in pairs:
            if sorted(PLACEHOLDER.findall(english)) != sorted(PLACEHOLDER.findall(swedish)):
                mismatched.append((english, swedish))
    assert mismatched == []


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_committed_mo_is_its_po_compiled(domain: str) -> None:
    compiled = MESSAGES / f"{domain}.mo"
    assert compiled.is_file(), f"{compiled} is missing: run `make messages`"
    expected = _entries(_catalog(domain))
    expected.pop(("", "", ""), None)
    actual = _entries(polib.mofile(str(compiled)))
    actual.pop(("", "", ""), None)
    assert actual == expected, "the .mo is stale: run `make messages` and commit both files"
