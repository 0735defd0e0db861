"""Which migrations a release adds, and whether the previous release's code survives them.

Expand-then-contract: a release may add tables, columns with defaults and indexes, and the
release before it still runs against that schema (a rollback is safe). Removing, renaming or
altering a field or model breaks the previous code, so such a release is marked not
rollback-safe with the migrations named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from deployments.git import GitError, git
from deployments.models import Release
from deployments.services import DeploymentError, release_create

# Operations the previous release's code cannot survive (expand-then-contract is broken).
CONTRACTING_OPERATIONS = re.compile(
    r"migrations\.(RemoveField|DeleteModel|RenameField|RenameModel|AlterField)\("
)


@dataclass(frozen=True)
class MigrationSafety:
    migrations: list[str]
    contracting: list[str]

    @property
    def unsafe_reason(self) -> str:
        if not self.contracting:
            return ""
        return "contracting migrations: " + ", ".join(self.contracting)


def release_migrations_inspect(*, previous_sha: str | None, sha: str) -> MigrationSafety:
    """The migration files ``sha`` adds since ``previous_sha`` and those among them that
    contract the schema (none when there is no previous release or it is the same commit)."""
    if not previous_sha or previous_sha == sha:
        return MigrationSafety(migrations=[], contracting=[])
    changed = git("diff", "--name-only", "--diff-filter=A", f"{previous_sha}..{sha}")
    migrations = [p for p in changed.split() if "/migrations/" in p and p.endswith(".py")]
    contracting = [
        p for p in migrations if CONTRACTING_OPERATIONS.search(git("show", f"{sha}:{p}"))
    ]
    return MigrationSafety(migrations=migrations, contracting=contracting)


def release_create_from_git(
    *,
    ref: str = "HEAD",
    notes: str = "",
    not_rollback_safe: str = "",
    actor: Any = None,
    actor_name: str = "",
) -> Release:
    """Records the next release for the commit ``ref`` names in this repository (HEAD, a
    SHA, a branch or a tag). Contracting migrations since the previous release mark it not
    rollback-safe, as does a ``not_rollback_safe`` reason. Raises ``DeploymentError`` with
    git's own words when ``ref`` names no commit."""
    sha = release_ref_resolve(ref)
    try:
        previous = Release.objects.order_by("-version").first()
        safety = release_migrations_inspect(
            previous_sha=previous.git_sha if previous else None, sha=sha
        )
    except GitError as error:
        raise DeploymentError(str(error)) from None
    unsafe_reason = not_rollback_safe.strip() or safety.unsafe_reason
    return release_create(
        git_sha=sha,
        notes=notes,
        rollback_safe=not unsafe_reason,
        rollback_unsafe_reason=unsafe_reason,
        migrations=safety.migrations,
        actor=actor,
        actor_name=actor_name,
    )


def release_ref_resolve(ref: str) -> str:
    """The full SHA of the commit ``ref`` names in this repository; raises
    ``DeploymentError`` with git's own words when it names none."""
    ref = ref.strip()
    # Never an option to git (``--output=…``), never two words.
    if not ref or ref.startswith("-") or any(c.isspace() for c in ref):
        raise DeploymentError(f"{ref!r} is not a commit, branch or tag name")
    try:
        return git("rev-parse", "--verify", f"{ref}^{{commit}}")
    except GitError as error:
        raise DeploymentError(str(error)) from None


def release_head_describe() -> str:
    """The current commit as an operator recognises it (``3f737aa Contract: …``), or why
    there is none (a release export has no git)."""
    try:
        return git("log", "-1", "--format=%h %s")
    except GitError as error:
        return f"unknown ({error})"
