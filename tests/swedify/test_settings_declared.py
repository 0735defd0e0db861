"""Every setting the code reads is declared in swedify/settings.py, with its default there:
no setting lives only as the default of a ``getattr(settings, name, default)``."""

from __future__ import annotations

import re
from pathlib import Path

from swedify import settings as declared

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("swedify", "genres", "deployments", "sandbox", "benchmarks")
READ_WITH_A_DEFAULT = re.compile(r"getattr\(\s*settings\s*,\s*[\"']([A-Z][A-Z0-9_]*)[\"']")


def settings_read_with_a_default(root: Path = REPO) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for name in READ_WITH_A_DEFAULT.findall(path.read_text(encoding="utf-8")):
                found.setdefault(name, []).append(str(path.relative_to(root)))
    return found


def test_the_scan_finds_reads_with_a_default_even_over_several_lines(tmp_path: Path) -> None:
    # The negative control: an empty answer below means nothing undeclared, not a blind scan.
    (tmp_path / "genres").mkdir()
    (tmp_path / "genres" / "module.py").write_text(
        'a = getattr(settings, "SWEDIFY_ONE", 1)\n'
        "b = getattr(\n    settings,\n    'SWEDIFY_TWO',\n    2,\n)\n"
        "c = settings.SWEDIFY_THREE\n"
    )
    assert settings_read_with_a_default(tmp_path) == {
        "SWEDIFY_ONE": ["genres/module.py"],
        "SWEDIFY_TWO": ["genres/module.py"],
    }


def test_every_setting_read_with_a_default_is_declared_in_the_settings_module() -> None:
    undeclared = {
        name: files
        for name, files in settings_read_with_a_default().items()
        if not hasattr(declared, name)
    }
    assert undeclared == {}
