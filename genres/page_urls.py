"""Routes of the listener pages (the JSON API and sign-in live in genres/urls.py)."""

from __future__ import annotations

urlpatterns: list = []
