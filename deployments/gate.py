"""The quality gate remembers what it has already proven.

A gate command's verdict depends on the release's files, the commands and the interpreter's
packages, and on nothing else (``adapters.gate_environment`` runs it without the worker's
variables, on SQLite in a fresh folder). So a stage whose ``reuse_passed`` param is on records
a key of those three inputs when it passes, and a later run with the same key (the same commit
deployed again, or another commit with the same tree) reuses that pass instead of spending a
minute on the same test suite. Any change to a file, a requirement, an installed package or a
command changes the key, and the gate runs again; a failure is never reused. The security scan
is not cached: the vulnerability database it asks changes between runs.

The gate runs with this checkout's interpreter when the release pins the same requirements;
a release that pins others gets a virtualenv built from its ``requirements-dev.txt``, kept
per requirements hash (``deployments.agent.venv_ensure``), so only the first release with
new pins pays for the install.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from deployments.git import GitError, git
from deployments.models import PipelineRun, StageRun

GATE_REQUIREMENTS = ("requirements.txt", "requirements-dev.txt")
_LIST_PACKAGES = (
    "import importlib.metadata, json; print(json.dumps(sorted({"
    "f\"{(d.metadata['Name'] or '').lower()}=={d.version}\" "
    "for d in importlib.metadata.distributions()})))"
)


def gate_requirements_differ(*, source_dir: Path) -> bool:
    """True when the release pins other requirements than this checkout (a release folder
    without any requirements file has nothing better than this interpreter)."""
    theirs = [Path(source_dir) / name for name in GATE_REQUIREMENTS]
    if not any(path.is_file() for path in theirs):
        return False
    for name, path in zip(GATE_REQUIREMENTS, theirs, strict=True):
        ours = Path(settings.BASE_DIR) / name
        mine = ours.read_bytes() if ours.is_file() else b""
        if (path.read_bytes() if path.is_file() else b"") != mine:
            return True
    return False


def gate_packages(python: str = "") -> list[str]:
    """``name==version`` of every package the gate's interpreter can import (this one's
    unless another ``python`` is named)."""
    if python and python != sys.executable:
        listed = subprocess.run(
            [python, "-c", _LIST_PACKAGES], capture_output=True, text=True, timeout=60, check=True
        )
        return list(json.loads(listed.stdout))
    found = {
        f"{(dist.metadata['Name'] or '').lower()}=={dist.version}"
        for dist in importlib.metadata.distributions()
    }
    return sorted(found)


def gate_key(*, git_sha: str, commands: list[str], python: str = "") -> str | None:
    """What a gate verdict depends on, as one hash; None when the release's tree cannot be
    named (no git checkout here), in which case nothing is reused."""
    try:
        tree = git("rev-parse", "--verify", f"{git_sha}^{{tree}}")
    except GitError:
        return None
    digest = hashlib.sha256()
    digest.update(f"tree {tree}\npython {sys.version}\n".encode())
    for command in commands:
        digest.update(f"command {command}\n".encode())
    for package in gate_packages(python):
        digest.update(f"package {package}\n".encode())
    return digest.hexdigest()


def gate_passed_before(*, stage_key: str, key: str, run: PipelineRun) -> PipelineRun | None:
    """The latest other run whose ``stage_key`` stage passed with the same key."""
    return (
        PipelineRun.objects.filter(
            **{f"context__gates__{stage_key}": key},
            stages__key=stage_key,
            stages__outcome=StageRun.Outcome.SUCCEEDED,
        )
        .exclude(pk=run.pk)
        .order_by("-pk")
        .first()
    )
