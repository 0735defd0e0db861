"""Every string wrapped for translation is in the Swedish catalogs: a string wrapped (or
changed) without `make messages` fails here, so the Swedish pages never show it in English.

Runs Django's makemessages, as `make messages` does, on a copy of the source, and compares
its messages with the committed .po files. Needs GNU gettext (`apt-get install gettext`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import polib
import pytest
from django.conf import settings

REPO = Path(settings.BASE_DIR)
# What the Makefile's `messages` target reads (its MESSAGES_IGNORE leaves out the rest).
SOURCES = ["genres", "swedify", "templates", "static", "locale", "deployments", "manage.py"]
FLAGS = [
    "--locale=sv",
    "--no-obsolete",
    "--add-location=file",
    "--ignore=var",
    "--ignore=deployments",
]
MAKEMESSAGES_SECONDS = 120


@pytest.fixture(scope="module")
def fresh_catalogs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """locale/sv/LC_MESSAGES of a copy of the source after makemessages."""
    missing = [tool for tool in ("xgettext", "msgmerge") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} missing: install GNU gettext (apt-get install gettext)",
            pytrace=False,
        )
    tree = tmp_path_factory.mktemp("messages") / "tree"
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            tree.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tree / name)
    # The copy's own settings (BASE_DIR, so LOCALE_PATHS) and data folder: nothing of the
    # checkout is written.
    env = {**os.environ, "SWEDIFY_DATA_DIR": str(tree / "var"), "PYTHONPATH": str(tree)}
    for domain in ("django", "djangojs"):
        subprocess.run(
            [sys.executable, "manage.py", "makemessages", *FLAGS, f"--domain={domain}"],
            cwd=tree,
            env=env,
            check=True,
            capture_output=True,
            timeout=MAKEMESSAGES_SECONDS,
        )
    return tree / "locale" / "sv" / "LC_MESSAGES"


def _messages(path: Path) -> set[tuple[str, str, str]]:
    return {
        (entry.msgctxt or "", entry.msgid, entry.msgid_plural or "")
        for entry in polib.pofile(str(path))
        if not entry.obsolete
    }


# Slow (two makemessages runs, about 10 s each on a loaded machine): the only check that the
# Swedish pages have no wrapped string left in English.
@pytest.mark.slow
@pytest.mark.parametrize("domain", ["django", "djangojs"])
def test_every_wrapped_string_is_in_the_committed_swedish_catalog(
    fresh_catalogs: Path, domain: str
) -> None:
    wrapped = _messages(fresh_catalogs / f"{domain}.po")
    committed = _messages(REPO / "locale" / "sv" / "LC_MESSAGES" / f"{domain}.po")
    assert len(wrapped) > 10
    missing = sorted(wrapped - committed)
    assert missing == [], (
        f"wrapped but not in locale/sv/LC_MESSAGES/{domain}.po: run `make messages`, "
        f"translate, run it again and commit: {missing}"
    )
