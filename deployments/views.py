"""Operator-facing HTTP endpoints: health."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """The basic form checks nothing but that this process serves (load balancers poll it);
    ``?detailed=true`` probes the database, cache, broker and Spotify within 1 s."""
    detailed = request.GET.get("detailed", "").strip().lower()
    if detailed in _TRUE:
        from deployments.probes import detailed_health

        body, status = detailed_health()
        return JsonResponse(body, status=status)
    if detailed not in _FALSE:
        return JsonResponse({"error": "detailed must be true or false"}, status=400)
    return JsonResponse({"status": "ok", "version": settings.SWEDIFY_VERSION})
