"""Leaving Swedify: the confirmation page and ``POST /auth/disconnect``."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from genres.listeners import listener_disconnect
from genres.selectors import listener_account


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def disconnect(request: HttpRequest) -> HttpResponse:
    """GET: the confirmation page. POST (CSRF, by Django's middleware): deletes the listener's
    tokens and data, ends all their sessions, 302 to /. Idempotent: without a session it
    only redirects."""
    if not request.user.is_authenticated:
        return HttpResponseRedirect("/")
    if request.method != "POST":
        account = listener_account(user=request.user)
        return render(request, "genres/disconnect.html", {"account": account})
    listener_disconnect(user=request.user)
    logout(request)
    # Translated now, in the leaving listener's language: the message is stored as text.
    messages.success(
        request,
        gettext(
            "Swedify disconnected from Spotify and deleted your data. "
            "The playlists it made are still in your Spotify library."
        ),
    )
    return HttpResponseRedirect("/")
