"""The Celery app: ``celery -A swedify worker`` runs Swedify's background work."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import beat_init, worker_init

from swedify import filesystem_broker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "swedify.settings")
# kombu's own filesystem transport can hand a consumer a half-written message file.
filesystem_broker.register()

app = Celery("swedify")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _refuse_bad_configuration(**_: object) -> None:
    from swedify.datadir import data_dir_prepare
    from swedify.preflight import guard

    guard(component="worker")
    data_dir_prepare()


@beat_init.connect
def _prepare_the_schedule_folder(**_: object) -> None:
    # A separate `celery beat` keeps its schedule file in the data folder.
    from swedify.datadir import data_dir_prepare

    data_dir_prepare()
