"""The header's language switch: ``POST /i18n/setlang`` and the JavaScript catalog.

Django's own ``set_language`` does the work (the django_language cookie, and a redirect to
``next`` only when it is on this site, else to the Referer if that is, else to /). It would
answer a GET or an unknown language with a silent redirect; here both are a clear 4xx.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils import translation
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_GET, require_POST
from django.views.i18n import JavaScriptCatalog
from django.views.i18n import set_language as django_set_language

# Only our own messages (locale/) and Django's small djangojs catalog, not every installed
# app's (the admin's alone is most of a catalog nobody on the listener pages needs).
_catalog = JavaScriptCatalog.as_view(packages=["swedify"])
# Browsers keep a catalog this long; a release's new messages reach them within it.
CATALOG_MAX_AGE_SECONDS = 300


def _unknown_language(language: str) -> HttpResponse:
    codes = ", ".join(code for code, _ in settings.LANGUAGES)
    return HttpResponseBadRequest(
        f"Unknown language {language[:20]!r}: choose one of {codes}.",
        content_type="text/plain; charset=utf-8",
    )


@require_GET
def javascript_catalog(request: HttpRequest) -> HttpResponse:
    """The script's messages and formats. Pages ask for ``?lang=<their language>``: the
    answer then depends on the URL alone, so browsers may keep it (a switch of language
    changes the URL). Without ``lang``, the request's own language, and nothing kept."""
    language = request.GET.get("lang")
    if language is None:
        response = _catalog(request)
        patch_cache_control(response, private=True, no_cache=True)
        return response
    if language not in dict(settings.LANGUAGES):
        return _unknown_language(language)
    with translation.override(language):
        response = _catalog(request)
        response["Content-Language"] = language
    patch_cache_control(response, public=True, max_age=CATALOG_MAX_AGE_SECONDS)
    return response


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """Remembers the chosen language in a cookie and redirects back (CSRF-protected, by
    Django's middleware). 400 for a language Swedify does not speak; 405 for anything but
    POST."""
    language = request.POST.get("language", "")
    if language not in dict(settings.LANGUAGES):
        return _unknown_language(language)
    return django_set_language(request)
