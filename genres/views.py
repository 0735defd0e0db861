"""The listener JSON API: scans and genres (playlist jobs live in playlist_views.py).

Every answer is JSON, errors included, and the order of checks is the same everywhere:
405 (wrong method), 401 (no listener session, a session Spotify no longer honours, or an
unreadable session); for writes then the body's framing as its headers declare it (411 no
length, 413 too large, 415 not JSON), so that nothing is parsed before the CSRF check; 403
(CSRF, for writes); 429 for a job-starting request over the listener's limit; then 400 / 404
for what the client sent. Every request body of the API is read by ``json_body``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from functools import wraps
from itertools import accumulate
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from genres import selectors
from genres.limits import JOB_STARTS, limit_exceeded
from genres.scans import ScanInputError, scan_start
from swedify.middleware import request_body_drain

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# JSON bodies of this API are small; anything bigger is refused before parsing.
MAX_BODY_BYTES = 64 * 1024
# The deepest body the API understands is an object holding a list. Python's parser recurses
# once per level: 30,000 brackets (60 KB) would exhaust the stack.
MAX_JSON_DEPTH = 16
JSON_CONTENT_TYPE = re.compile(r"application/(?:[a-z0-9.+-]+\+)?json")
# A JSON string with its escapes, matched without backtracking (possessive quantifiers), so
# brackets inside strings do not count as nesting.
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_A_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))
# NUL cannot be stored by PostgreSQL (text or jsonb), and no database driver can encode a lone
# surrogate as UTF-8; no field of this API has a use for either.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class BodyError(ValueError):
    """A request body the API refuses; ``status`` and the message are the answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


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
    """Method check, listener session, body framing and CSRF for writes, then the view.

    Views scope every query by ``request.user``; the listener check here is a gate. A body
    the view left unread is discarded before the answer, so the connection stays usable.
    """

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        @csrf_exempt  # checked below, after authentication, so every answer is JSON
        @never_cache
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            response = checked(request, *args, **kwargs)
            request_body_drain(request)
            return response

        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            allowed = (*methods, "HEAD") if "GET" in methods else methods
            if request.method not in allowed:
                return error(405, "Method not allowed", Allow=", ".join(allowed))
            if selectors.listener_account(user=request.user) is None:
                return error(401, "Not authenticated")
            if request.method not in SAFE_METHODS:
                try:
                    # Before CSRF, whose check would otherwise parse a form body of any size.
                    body_framing_check(request)
                except BodyError as problem:
                    return error(problem.status, str(problem))
                if _csrf_rejected(request):
                    return error(403, "CSRF token missing or incorrect")
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def body_framing_check(request: HttpRequest) -> None:
    """Refuse, from the headers alone, a body the API would never read; raises BodyError."""
    length = request.META.get("CONTENT_LENGTH") or ""
    if not length and request.META.get("HTTP_TRANSFER_ENCODING"):
        # Django reads no body without a Content-Length: a chunked body would be taken for an
        # empty one, and the request served with defaults the client did not ask for.
        raise BodyError("The request body needs a Content-Length", status=411)
    if length and not (length.isascii() and length.isdigit()):
        raise BodyError("The Content-Length header is malformed")
    size = int(length or 0)
    if size > MAX_BODY_BYTES:
        raise BodyError(
            f"The request body must be at most {MAX_BODY_BYTES} bytes of JSON", status=413
        )
    content_type = (request.content_type or "").strip().lower()
    if size == 0 and not content_type:
        return
    # Any other declared type is refused even without a body: CSRF's check would parse it as
    # a form, and a multipart type without a boundary makes Django answer an HTML 400.
    charset = (request.content_params or {}).get("charset", "utf-8").strip().lower()
    if not JSON_CONTENT_TYPE.fullmatch(content_type) or charset not in ("utf-8", "utf8"):
        raise BodyError(
            "The request body must be JSON, sent as Content-Type: application/json", status=415
        )


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The request's JSON object ({} for an empty body); raises BodyError saying why not.

    The one reader of request bodies for the whole API: bounded in size and nesting, strict
    JSON (no NaN or Infinity), and no text a database could not store.
    """
    body_framing_check(request)
    try:
        raw = request.body
    except RequestDataTooBig:
        raise BodyError("The request body is too large", status=413) from None
    if not raw.strip():
        return {}
    if _json_depth(raw) > MAX_JSON_DEPTH:
        raise BodyError(f"The request body must not nest deeper than {MAX_JSON_DEPTH} levels")
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_not_json)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BodyError("The request body must be JSON") from None
    if not isinstance(body, dict):
        raise BodyError("The request body must be a JSON object")
    if _has_unstorable_text(body):
        raise BodyError("Text in the request body must not contain NUL or unpaired surrogates")
    return body


def _json_depth(raw: bytes) -> int:
    """How deep the brackets of a JSON text nest, brackets inside strings not counted."""
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_A_BRACKET)
    return max(accumulate((1 if byte in b"[{" else -1 for byte in brackets), initial=0))


def _not_json(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _has_unstorable_text(value: Any) -> bool:
    """Whether any string of a parsed body, keys included, holds NUL or a lone surrogate.
    The recursion is bounded: the nesting was checked before parsing."""
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_unstorable_text(k) or _has_unstorable_text(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_unstorable_text(item) for item in value)
    return False


def job_starts_limited(request: HttpRequest) -> HttpResponse | None:
    """429 JSON with Retry-After when the listener has started too much Spotify work lately
    (genres.limits.JOB_STARTS), else None. Only job-starting requests call this."""
    retry_after = limit_exceeded(JOB_STARTS, who=f"user:{request.user.pk}")
    if retry_after is None:
        return None
    return error(
        429,
        "Too many scans or playlist requests in a short time; try again shortly",
        **{"Retry-After": str(retry_after)},
    )


@api("POST")
def scans(request: HttpRequest) -> HttpResponse:
    """POST /api/scans: 202 new scan; 200 the running one, or a fresh one with reused=true."""
    limited = job_starts_limited(request)
    if limited is not None:
        return limited
    try:
        body = json_body(request)
    except BodyError as problem:
        return error(problem.status, str(problem))
    refresh = body.get("refresh", False)
    if not isinstance(refresh, bool):
        return error(400, '"refresh" must be true or false')
    try:
        scan, created = scan_start(user=request.user, sources=body.get("sources"), refresh=refresh)
    except ScanInputError as problem:
        return error(400, str(problem))
    if created:
        return ApiResponse(selectors.scan_json(scan), status=202)
    reused = scan.status == scan.Status.SUCCEEDED
    return ApiResponse(selectors.scan_json(scan, reused=reused), status=200)


@api("GET")
def scan_detail(request: HttpRequest, scan_id: str) -> HttpResponse:
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
def genres(request: HttpRequest) -> HttpResponse:
    """GET /api/genres: the latest successful scan's result, 404 before the first one."""
    payload = selectors.genres_payload(user=request.user)
    if payload is None:
        return error(404, "No scan yet")
    return ApiResponse(payload)


@csrf_exempt
def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    """Any other /api/ path: JSON 404, never Django's HTML page."""
    request_body_drain(request)
    return error(404, "Not found")
