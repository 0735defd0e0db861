"""Auto-sync of 1,000 listeners with nothing new (being written)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from benchmarks.harness import Target


@dataclass(frozen=True)
class SyncCase:
    listeners: int = 1_000

    def tiny(self) -> SyncCase:
        return replace(self, listeners=20)


def case_sync(stack: Any, case: SyncCase = SyncCase()) -> list[Target]:
    raise NotImplementedError("the sync case is being written")
