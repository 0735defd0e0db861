"""The one way deployments/ asks git about this repository (releases, their exports and their
migrations)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from django.conf import settings

GIT_TIMEOUT_SECONDS = 60.0


class GitError(Exception):
    """git failed; the message holds its stderr."""


def git(*args: str, repository: Path | None = None, timeout: float = GIT_TIMEOUT_SECONDS) -> str:
    """Runs ``git -C <repository> <args>`` (this project by default) and returns its stdout,
    stripped; raises ``GitError`` when git exits non-zero."""
    folder = Path(repository) if repository is not None else Path(settings.BASE_DIR)
    try:
        result = subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise GitError(f"git {' '.join(args)}: {error}") from None
    if result.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()
