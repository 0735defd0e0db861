from __future__ import annotations

from django.apps import AppConfig


class GenresConfig(AppConfig):
    name = "genres"
