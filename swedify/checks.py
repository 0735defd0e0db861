"""System checks: configuration mistakes that must stop Swedify before it serves.

The same rules stop the server entry points (``swedify.preflight``); here they are also part
of ``manage.py check --deploy``, which an operator runs against the production environment.
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from swedify.preflight import ConfigurationError, check_spotify, check_token_keys


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


@register(Tags.security, deploy=True)
def spotify_check(app_configs: object = None, **_: object) -> list[Error | Warning]:
    try:
        check_spotify()
    except ConfigurationError as error:
        return [Error(str(error), id="swedify.E002")]
    if settings.SPOTIFY_SANDBOX and not settings.DEBUG:
        return [
            Warning(
                "Listeners sign in through the bundled Spotify sandbox (SWEDIFY_SANDBOX) while "
                "DEBUG is off.",
                hint="Set SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET and drop SWEDIFY_SANDBOX.",
                id="swedify.W003",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def token_keys_check(app_configs: object = None, **_: object) -> list[Error]:
    try:
        check_token_keys()
    except ConfigurationError as error:
        return [Error(str(error), id="swedify.E004")]
    return []
