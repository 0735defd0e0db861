"""The listener JSON API: scans and genres (playlist jobs live in playlist_views.py).

Every answer is JSON, errors included, and the order of checks is the same everywhere:
405 (wrong method), 401 (no listener session, a session Spotify no longer honours, or an
unreadable session), 403 (CSRF, for writes), then 400 / 404 for what the client sent.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from genres import scans as services
from genres import selectors

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# JSON bodies of this API are small; anything bigger is refused before parsing.
MAX_BODY_BYTES = 64 * 1024


class ApiResponse(JsonResponse):
    """JSON with ``<``, ``>`` and ``&`` escaped: genre and artist names are hostile data, and
    an answer pasted into a page or sniffed as HTML must still be inert."""

    def __init__(self, data: Any, status: int = 200) -> None:
        super().__init__(data, status=status)
        self.content = (
            self.content.replace(b"<", b"\\u003c")
            .replace(b">", b"\\u003e")
            .replace(b"&", b"\\u0026")
        )


def error(status: int, message: str, **headers: str) -> JsonResponse:
    response = ApiResponse({"error": message}, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: JSON 403 under /api/, Django's usual page elsewhere."""
    if request.path.startswith("/api/"):
        return error(403, "CSRF token missing or incorrect")
    from django.views.csrf import csrf_failure as default_failure

    return default_failure(request, reason=reason)


def _csrf_rejected(request: HttpRequest) -> bool:
    return (
        CsrfViewMiddleware(lambda _: HttpResponse()).process_view(request, None, (), {}) is not None
    )


def api(*methods: str) -> Callable:
    """Method check, listener session, CSRF for writes; the view gets the listener account."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        @csrf_exempt  # checked below, after authentication, so every answer is JSON
        @never_cache
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            allowed = (*methods, "HEAD") if "GET" in methods else methods
            if request.method not in allowed:
                return error(405, "Method not allowed", Allow=", ".join(allowed))
            account = selectors.listener_account(user=request.user)
            if account is None:
                return error(401, "Not authenticated")
            if request.method not in SAFE_METHODS and _csrf_rejected(request):
                return error(403, "CSRF token missing or incorrect")
            return view(request, account, *args, **kwargs)

        return wrapper

    return decorate


def _json_body(request: HttpRequest) -> dict[str, Any]:
    """The request's JSON object ({} for an empty body); raises ValueError saying why not."""
    length = request.META.get("CONTENT_LENGTH") or "0"
    if not length.isdigit() or int(length) > MAX_BODY_BYTES:
        raise ValueError(f"The request body must be at most {MAX_BODY_BYTES} bytes of JSON")
    try:
        raw = request.body
    except RequestDataTooBig:
        raise ValueError("The request body is too large") from None
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError("The request body must be JSON") from None
    if not isinstance(body, dict):
        raise ValueError("The request body must be a JSON object")
    return body


@api("POST")
def scans(request: HttpRequest, account: Any) -> HttpResponse:
    """POST /api/scans: 202 new scan; 200 the running one, or a fresh one with reused=true."""
    try:
        body = _json_body(request)
    except ValueError as problem:
        return error(400, str(problem))
    refresh = body.get("refresh", False)
    if not isinstance(refresh, bool):
        return error(400, '"refresh" must be true or false')
    try:
        scan, created = services.scan_start(
            user=request.user, sources=body.get("sources"), refresh=refresh
        )
    except services.ScanInputError as problem:
        return error(400, str(problem))
    if created:
        return ApiResponse(selectors.scan_json(scan), status=202)
    reused = scan.status == scan.Status.SUCCEEDED
    return ApiResponse(selectors.scan_json(scan, reused=reused), status=200)


@api("GET")
def scan_detail(request: HttpRequest, account: Any, scan_id: str) -> HttpResponse:
    """GET /api/scans/<id>: the listener's own scan, 404 for anyone else's."""
    try:
        key = uuid.UUID(scan_id)
    except ValueError:
        return error(404, "Scan not found")
    scan = selectors.scan_for_user(user=request.user, scan_id=key)
    if scan is None:
        return error(404, "Scan not found")
    return ApiResponse(selectors.scan_json(scan))


@api("GET")
def genres(request: HttpRequest, account: Any) -> HttpResponse:
    """GET /api/genres: the latest successful scan's result, 404 before the first one."""
    payload = selectors.genres_payload(user=request.user)
    if payload is None:
        return error(404, "No scan yet")
    return ApiResponse(payload)


@csrf_exempt
def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    """Any other /api/ path: JSON 404, never Django's HTML page."""
    return error(404, "Not found")
