"""Swedify: sorts a Spotify listener's liked songs into genre playlists."""

from __future__ import annotations

__version__ = "0.1.0"

from swedify.celery import app as celery_app

__all__ = ["__version__", "celery_app"]
