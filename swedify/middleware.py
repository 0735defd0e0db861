"""A strict, nonce-based Content-Security-Policy for every page, and request bodies drained
before every answer so a kept-alive connection stays usable."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, UnreadablePostError
from django.utils import translation

# Listener pages run no inline code at all: scripts and styles come from our static files,
# and the nonce exists only for the rare element that must be inline.
LISTENER_POLICY = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; "
    "img-src 'self' data: https://i.scdn.co https://*.spotifycdn.com; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
# Django's admin sets a few inline style attributes of its own.
ADMIN_POLICY = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        nonce = secrets.token_urlsafe(16)
        request.csp_nonce = nonce
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            policy = ADMIN_POLICY if request.path.startswith("/admin/") else LISTENER_POLICY
            response["Content-Security-Policy"] = policy.format(nonce=nonce)
        return response


def csp_nonce(request: HttpRequest) -> dict[str, str]:
    return {"csp_nonce": getattr(request, "csp_nonce", "")}


class AdminInEnglishMiddleware:
    """Right after LocaleMiddleware: the operators' admin stays in English whatever the browser
    asks. Only the listener pages are translated; Django's own admin strings would otherwise
    turn Swedish around Swedify's English ones (actions, runbooks, deploy messages)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/admin/"):
            translation.activate(settings.LANGUAGE_CODE)
            request.LANGUAGE_CODE = translation.get_language()
        return self.get_response(request)


# A request body the app never read (an answer given before the body mattered: 401, 403, 405,
# a refused oversized upload) is read and thrown away before the answer goes out. Left unread,
# gunicorn drains at most 64 KB itself and otherwise closes a connection its answer has just
# announced as keep-alive, so the client's (or the proxy's) next request on it fails.
DRAIN_MAX_BYTES = 1024 * 1024
# A client trickling its body slowly must not hold a worker thread for long.
DRAIN_MAX_SECONDS = 5.0
DRAIN_CHUNK_BYTES = 64 * 1024


def request_body_drain(request: HttpRequest) -> int:
    """Read and discard what is left of the request body; the number of bytes discarded.

    Bodies declared larger than DRAIN_MAX_BYTES are not read at all: the server closes such a
    connection, since keeping it would mean reading everything the client chose to send.
    """
    length = request.META.get("CONTENT_LENGTH") or "0"
    if not length.isdigit() or int(length) > DRAIN_MAX_BYTES:
        return 0
    discarded = 0
    deadline = time.monotonic() + DRAIN_MAX_SECONDS
    while time.monotonic() < deadline:
        try:
            # Django's request stream stops at Content-Length, so this never reads past the
            # body into the next request on the connection.
            chunk = request.read(DRAIN_CHUNK_BYTES)
        except (OSError, UnreadablePostError):
            break
        if not chunk:
            break
        discarded += len(chunk)
    return discarded


class RequestBodyDrainMiddleware:
    """Outermost: every answer leaves the connection at the start of the next request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        request_body_drain(request)
        return response
