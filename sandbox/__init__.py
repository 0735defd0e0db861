"""The bundled Spotify sandbox: a local, deterministic stand-in for Spotify's accounts service
and Web API as a Development-Mode app sees them in 2026.

Standard library only, so it starts anywhere Python does. Start it with
``python -m sandbox --port 8900``; drive it from tests with :mod:`sandbox.testing`.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "1.0.0"
