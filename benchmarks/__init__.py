"""Benchmarks: ``python -m benchmarks [name ...] [options]`` (``make bench``, ``bench-deploy``).

Each benchmark is a module with ``main(argv: list[str]) -> int`` registered in
``benchmarks.__main__.BENCHMARKS``; it prints its figures next to a baseline measured in the
same run and exits non-zero when a target is missed.
"""

import os

# Every benchmark measures Swedify against the bundled Spotify sandbox, often with DEBUG off
# (as in production); the settings use the sandbox then only on this explicit opt-in
# (docs/contract.md, SWEDIFY_SANDBOX), and the processes a benchmark starts inherit it.
os.environ.setdefault("SWEDIFY_SANDBOX", "true")
