"""Which migrations a release adds, and whether the previous release's code survives them.

Expand-then-contract: a release may add tables, columns with defaults and indexes, and the
release before it still runs against that schema (a rollback is safe). Removing, renaming or
altering a field or model breaks the previous code, so such a release is marked not
rollback-safe with the migrations named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from deployments.git import git

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
