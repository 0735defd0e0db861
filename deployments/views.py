"""Operator-facing HTTP endpoints: health."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """The basic form checks nothing but that this process serves (load balancers poll it)."""
    return JsonResponse({"status": "ok", "version": settings.SWEDIFY_VERSION})
