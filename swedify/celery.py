"""The Celery app: ``celery -A swedify worker`` runs Swedify's background work."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_init

from swedify import filesystem_broker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "swedify.settings")
# kombu's own filesystem transport can hand a consumer a half-written message file.
filesystem_broker.register()

app = Celery("swedify")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _refuse_bad_configuration(**_: object) -> None:
    from swedify.preflight import guard

    guard(component="worker")
