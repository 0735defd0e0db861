from __future__ import annotations

from django.apps import AppConfig


class SwedifyConfig(AppConfig):
    name = "swedify"

    def ready(self) -> None:
        from swedify import checks  # noqa: F401  (registers the checks)
