"""WSGI entry point for gunicorn: ``gunicorn swedify.wsgi``."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "swedify.settings")

from swedify.preflight import guard

application = get_wsgi_application()
guard(component="web")
