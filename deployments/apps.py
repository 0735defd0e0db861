from __future__ import annotations

from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    name = "deployments"

    def ready(self) -> None:
        # The pipeline and rollbacks queue their tasks by name (their modules cannot import
        # this one back); Celery's autodiscovery imports it only in a worker, so without
        # this a web process finds no such task and every run from the admin stayed queued.
        from deployments import tasks  # noqa: F401
