"""Django's debug page (and error reports) never show a service URL, key, secret or token:
not in the settings, not in the request's environment, not in a local variable."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from django.test import RequestFactory
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

from swedify.reporting import SecretsHiddenFilter

SECRETS = {
    "DATABASE_URL": "postgres://swedify:db-pa55word@db.internal:5432/swedify",
    "REDIS_URL": "redis://:redis-pa55word@cache.internal:6379/0",
    "CELERY_BROKER_URL": "amqp://worker:broker-pa55word@mq.internal:5672//",
    "SPOTIFY_CLIENT_SECRET": "spotify-client-pa55word",
    "SWEDIFY_TOKEN_KEYS": ["token-key-pa55word"],
    "SECRET_KEY": "django-secret-pa55word",
}
# The words that would leak if any value were shown.
LEAKS = ["db-pa55word", "redis-pa55word", "broker-pa55word", "spotify-client-pa55word",
         "token-key-pa55word", "django-secret-pa55word"]  # fmt: skip


def debug_page(settings: Any, reporter_filter: Any = None) -> str:
    for name, value in SECRETS.items():
        setattr(settings, name, value)
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": SECRETS["REDIS_URL"],
        }
    }
    # What runserver puts into META: the process environment.
    request = RequestFactory().get(
        "/boom", **{name: str(value) for name, value in SECRETS.items()}, HTTP_COOKIE="a=b"
    )
    if reporter_filter is not None:
        request.exception_reporter_filter = reporter_filter
    del name, value
    try:
        connect(SECRETS["CELERY_BROKER_URL"], SECRETS["SPOTIFY_CLIENT_SECRET"])
    except RuntimeError:
        return ExceptionReporter(request, *sys.exc_info()).get_traceback_html()
    raise AssertionError("connect() always raises")


# Far from the secrets' literals above: the debug page shows the source around each frame.
def connect(broker_url: str, spotify_secret: str) -> None:
    # Local variables on the traceback: a URL with a password, and a named secret.
    raise RuntimeError(f"cannot connect to {broker_url.split('@')[1]}")


def test_the_debug_page_masks_every_service_url_and_secret(settings: Any) -> None:
    settings.DEBUG = True
    page = debug_page(settings)
    assert "cannot connect to mq.internal" in page  # the page itself is there
    for leak in LEAKS:
        assert leak not in page, leak


def test_djangos_own_filter_would_show_the_service_urls(settings: Any) -> None:
    # The negative control: the URLs are not hidden by Django's defaults.
    settings.DEBUG = True
    page = debug_page(settings, SafeExceptionReporterFilter())
    assert "db-pa55word" in page
    assert "redis-pa55word" in page


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SENTRY_DSN", "https://public@sentry.example/1"),
        ("SOME_SETTING", "redis://user:pw@cache.internal/0"),
        ("ANYTHING", "postgres://u:p@h/db"),
    ],
)
def test_a_url_with_credentials_is_hidden_whatever_its_name(name: str, value: str) -> None:
    assert SecretsHiddenFilter().cleanse_setting(name, value) == "********************"
    assert SafeExceptionReporterFilter().cleanse_setting("ANYTHING", value) == value


def test_harmless_settings_stay_readable() -> None:
    assert SecretsHiddenFilter().cleanse_setting("TIME_ZONE", "UTC") == "UTC"
    assert SecretsHiddenFilter().cleanse_setting("ALLOWED_HOSTS", ["a.example"]) == ["a.example"]
