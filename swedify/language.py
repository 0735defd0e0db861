"""The header's language switch: ``POST /i18n/setlang`` and the JavaScript catalog.

Django's own ``set_language`` does the work (the django_language cookie, and a redirect to
``next`` only when it is on this site, else to the Referer if that is, else to /). It would
answer a GET or an unknown language with a silent redirect; here both are a clear 4xx.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.views.decorators.http import require_POST
from django.views.i18n import JavaScriptCatalog
from django.views.i18n import set_language as django_set_language

# Only our own messages (locale/) and Django's small djangojs catalog, not every installed
# app's (the admin's alone is most of a catalog nobody on the listener pages needs).
javascript_catalog = JavaScriptCatalog.as_view(packages=["swedify"])


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """Remembers the chosen language in a cookie and redirects back (CSRF-protected, by
    Django's middleware). 400 for a language Swedify does not speak; 405 for anything but
    POST."""
    language = request.POST.get("language", "")
    if language not in dict(settings.LANGUAGES):
        codes = ", ".join(code for code, _ in settings.LANGUAGES)
        return HttpResponseBadRequest(
            f"Unknown language {language[:20]!r}: choose one of {codes}.",
            content_type="text/plain; charset=utf-8",
        )
    return django_set_language(request)
