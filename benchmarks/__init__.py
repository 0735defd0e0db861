"""Benchmarks: ``python -m benchmarks [name ...] [options]`` (``make bench``, ``bench-deploy``).

Each benchmark is a module with ``main(argv: list[str]) -> int`` registered in
``benchmarks.__main__.BENCHMARKS``; it prints its figures next to a baseline measured in the
same run and exits non-zero when a target is missed.
"""
