"""The site's routes plus one that fails, so a browser test can see the product's 500 page
(tests point ROOT_URLCONF here)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from swedify.urls import urlpatterns as site_urlpatterns


class DeliberateFailure(RuntimeError):
    """Raised by the failing route; nothing else raises it."""


def fail(request: HttpRequest) -> HttpResponse:
    raise DeliberateFailure("a browser test asked for a server error")


FAILING_PATH = "/test-only/server-error"

urlpatterns = [path(FAILING_PATH.lstrip("/"), fail), *site_urlpatterns]
