"""System checks: configuration mistakes that must stop Swedify before it serves."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security, deploy=True)
def secret_key_check(app_configs: object = None, **_: object) -> list[Error]:
    if not settings.DEBUG and settings.SECRET_KEY == settings.DEVELOPMENT_SECRET_KEY:
        return [
            Error(
                "SECRET_KEY is the development key while DEBUG is off.",
                hint="Set SECRET_KEY to a long random value (or DEBUG=true on a laptop).",
                id="swedify.E001",
            )
        ]
    return []
