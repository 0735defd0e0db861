"""The quality gate remembers what it has already proven.

A gate command's verdict depends on the release's files, the commands and the interpreter's
packages, and on nothing else (``adapters.gate_environment`` runs it without the worker's
variables, on SQLite in a fresh folder). So a stage whose ``reuse_passed`` param is on records
a key of those three inputs when it passes, and a later run with the same key (the same commit
deployed again, or another commit with the same tree) reuses that pass instead of spending a
minute on the same test suite. Any change to a file, a requirement, an installed package or a
command changes the key, and the gate runs again; a failure is never reused. The security scan
is not cached: the vulnerability database it asks changes between runs.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import sys

from deployments.git import GitError, git
from deployments.models import PipelineRun, StageRun


def gate_packages() -> list[str]:
    """``name==version`` of every package the gate's interpreter (this one) can import."""
    found = {
        f"{(dist.metadata['Name'] or '').lower()}=={dist.version}"
        for dist in importlib.metadata.distributions()
    }
    return sorted(found)


def gate_key(*, git_sha: str, commands: list[str]) -> str | None:
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
    for package in gate_packages():
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
