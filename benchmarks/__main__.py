"""Runs benchmarks by name: ``python -m benchmarks`` runs all, ``python -m benchmarks deploy``
one. Arguments after the names (the first one starting with ``-``) go to each benchmark."""

from __future__ import annotations

import importlib
import sys

# name -> module exposing ``main(argv: list[str]) -> int``; add a benchmark with one line.
BENCHMARKS: dict[str, str] = {
    "deploy": "benchmarks.deploy",
    "scan": "benchmarks.scan",
    "pages": "benchmarks.pages",
    "budget": "benchmarks.budget",
}


def main(argv: list[str]) -> int:
    names = []
    while argv and not argv[0].startswith("-"):
        names.append(argv.pop(0))
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(
            f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}",
            file=sys.stderr,
        )
        return 2
    worst = 0
    for name in names or list(BENCHMARKS):
        print(f"== benchmark: {name}", flush=True)
        module = importlib.import_module(BENCHMARKS[name])
        worst = max(worst, module.main(list(argv)))
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
