from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
from django.core.management import get_commands


def test_every_management_command_the_runbooks_name_exists() -> None:
    runbook = (Path(settings.BASE_DIR) / "docs" / "runbooks.md").read_text()
    named = set(re.findall(r"manage\.py\s+([a-z_]+)", runbook))
    assert {"deploy", "rollback", "proxy", "preflight"} <= named
    assert named <= set(get_commands())
