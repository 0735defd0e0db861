"""WSGI entry point for gunicorn: ``gunicorn swedify.wsgi``.

A configuration error stops the process with one line and gunicorn's boot-error exit code,
so that the gunicorn master stops too instead of respawning workers that can never boot.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "swedify.settings")

from swedify.preflight import EXIT_WORKER_BOOT_ERROR, configuration_exit, guard

guard(component="web", exit_code=EXIT_WORKER_BOOT_ERROR)
try:
    from django.core.wsgi import get_wsgi_application

    from swedify.datadir import data_dir_prepare

    data_dir_prepare()
    application = get_wsgi_application()
except ImproperlyConfigured as error:
    configuration_exit(component="web", error=error, exit_code=EXIT_WORKER_BOOT_ERROR)
