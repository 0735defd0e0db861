"""Server-rendered listener pages: home (and its library card) and genres.

The pages read through ``genres.selectors`` and render the small ``summary`` of a scan result
(name and count per genre); the full payload with track ids is loaded only by the exports
(``selectors.latest_result`` defers that column unless asked for it).
Everything the listener does on a page (scan, create playlists) goes through the JSON API
with ``static/swedify/swedify.js``, which polls the job rows for live progress. The pages run
under the strict CSP of ``swedify.middleware``: no inline scripts, styles or on* handlers.

The exports of the genres (CSV and JSON) live in ``genres.exports``.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.db.models import Case, Value, When
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.shortcuts import render
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.html import format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from genres import selectors
from genres.families import FAMILIES, family_label, genre_family
from genres.models import PlaylistJob, Scan
from genres.playlists import (
    DEFAULT_NAME_PATTERN,
    MAX_DESCRIPTION_LENGTH,
    MAX_GENRES,
    MAX_PATTERN_LENGTH,
    UNCLASSIFIED,
)
from genres.selectors import STEP_LABELS

# How often the page's script polls a running job, in milliseconds (the worker writes its
# counters at least every 2 s).
POLL_INTERVAL_MS = 2000
# The CSV label of tracks without a genre; parentheses keep it apart from any Spotify genre.
CSV_UNCLASSIFIED = "(unclassified)"
# First characters that make a spreadsheet cell a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# What a spreadsheet may skip before it sees the formula: Unicode whitespace (spaces, line
# breaks, U+00A0 and the other no-break spaces), the zero-width space and the BOM.
FORMULA_LEADING_BLANKS = re.compile(r"^[\s\u200b\ufeff]+")
# From this many genres on, the genres page opens grouped by family with every family
# collapsed, so the page (and the way to the Create button) stays short.
COLLAPSE_FAMILIES_FROM = 150
# The flat list shows this many matching genres at a time, then "Show more".
FLAT_PAGE_ROWS = 100
PLAYLIST_JOB_ACTIVE = (PlaylistJob.Status.QUEUED, PlaylistJob.Status.RUNNING)
# Why a page sent a visitor home (GET /?notice=<key>), in words.
NOTICES: dict[str, Any] = {
    "sign_in_required": _(
        "Sign in with Spotify to see your genres: they belong to your Spotify account, and "
        "your session has ended or you have not signed in yet."
    ),
}

# The error keys of GET /auth/spotify/callback, in words, each with what to do next.
SIGN_IN_ERRORS: dict[str, Any] = {
    "spotify_denied": _(
        "You chose not to give Swedify access on Spotify's page, so nothing was read. "
        "Sign in again and give Swedify access there if you want to continue."
    ),
    "invalid_state": _(
        "That sign-in link had expired or was already used (this happens after pressing Back "
        "or signing in from two tabs). Please start the sign-in again."
    ),
    "invalid_request": _(
        "Spotify sent back an incomplete sign-in answer. Please start the sign-in again."
    ),
    "spotify_auth_failed": _(
        "Spotify did not complete the sign-in (it may be busy or unreachable). "
        "Please try again in a moment."
    ),
    "spotify_not_allowlisted": _(
        "Spotify signed you in, but does not let this Swedify use your account yet: while "
        "Swedify's Spotify app is in Development Mode, Spotify serves only the accounts its "
        "owner has added to the app's allow-list (at most five). Ask the person who runs this "
        "Swedify to add your Spotify account's email address on Spotify's developer dashboard "
        "(the app's User Management), then sign in again. Trying again before that will not help."
    ),
}
# Errors that trying again cannot fix: the page offers no "Try again" button for them.
SIGN_IN_ERRORS_NO_RETRY = frozenset({"spotify_not_allowlisted"})
UNKNOWN_SIGN_IN_ERROR = _("The sign-in did not complete. Please try again.")

STATUS_TITLES: dict[str, Any] = {
    Scan.Status.QUEUED: _("Scan waiting to start"),
    Scan.Status.RUNNING: _("Scanning your library"),
    Scan.Status.PAUSED: _("Scan paused"),
    Scan.Status.SUCCEEDED: _("Scan finished"),
    Scan.Status.FAILED: _("Scan failed"),
}


# --- Small pure helpers (unit-tested) -------------------------------------------------------


def age_in_words(then: datetime, now: datetime) -> str:
    """'just now', '1 minute ago', '5 minutes ago', '2 hours ago', '3 days ago'."""
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 60:
        return gettext("just now")
    if seconds < 3600:
        minutes = seconds // 60
        return ngettext("%(n)d minute ago", "%(n)d minutes ago", minutes) % {"n": minutes}
    if seconds < 86400:
        hours = seconds // 3600
        return ngettext("%(n)d hour ago", "%(n)d hours ago", hours) % {"n": hours}
    days = seconds // 86400
    return ngettext("%(n)d day ago", "%(n)d days ago", days) % {"n": days}


def eta_in_words(seconds: int | None) -> str:
    """The time a scan still needs: 'Less than a minute left', 'About 7 minutes left',
    'About 2 hours 5 minutes left'; '' when unknown. Rounded up: an estimate from the request
    budget is a lower bound, and a scan that ends early is better news than one that ends late."""
    if seconds is None:
        return ""
    if seconds < 60:
        return gettext("Less than a minute left")
    minutes = -(-seconds // 60)
    if minutes < 60:
        return ngettext("About %(n)d minute left", "About %(n)d minutes left", minutes) % {
            "n": minutes
        }
    hours, minutes = divmod(minutes, 60)
    hours_words = ngettext("%(n)d hour", "%(n)d hours", hours) % {"n": hours}
    if not minutes:
        return gettext("About %(hours)s left") % {"hours": hours_words}
    minutes_words = ngettext("%(n)d minute", "%(n)d minutes", minutes) % {"n": minutes}
    return gettext("About %(hours)s %(minutes)s left") % {
        "hours": hours_words,
        "minutes": minutes_words,
    }


def grouped(value: int) -> str:
    """A count with the active language's thousands separator ("10,000", "10 000")."""
    if -1000 < value < 1000:
        # No separator in any language; number_format's format lookups would cost the genres
        # page of a big library (a thousand rows) about a third of its time.
        return str(value)
    return number_format(value, force_grouping=True)


def csv_cell(value: Any) -> str:
    """A value made safe for a spreadsheet: text that would start a formula gets a quote."""
    text = "" if value is None else str(value)
    visible = FORMULA_LEADING_BLANKS.sub("", text, count=1)
    if text.startswith(FORMULA_PREFIXES) or visible.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def scan_error_in_words(error: dict[str, Any] | None) -> str:
    """The contract's scan error ({error, details, step, tracksFound, artistsToFetch}) as a
    sentence: what failed, why, at which step, and what had been found by then."""
    if not error:
        return ""
    if not isinstance(error, dict):
        return str(error)
    details = error.get("details")
    sentence = str(error.get("error") or gettext("Something went wrong"))
    if details:
        sentence += f" ({details})"
    step = error.get("step")
    if step in STEP_LABELS:
        words = gettext(STEP_LABELS[step])
        sentence += " " + gettext("while %(step)s") % {"step": words[0].lower() + words[1:]}
    sentence += "."
    found = error.get("tracksFound")
    to_fetch = error.get("artistsToFetch")
    counts = []
    if isinstance(found, int):
        counts.append(
            ngettext("%(n)s song found", "%(n)s songs found", found) % {"n": grouped(found)}
        )
    if isinstance(to_fetch, int):
        counts.append(
            ngettext("%(n)s artist to look up", "%(n)s artists to look up", to_fetch)
            % {"n": grouped(to_fetch)}
        )
    if counts:
        sentence += " " + gettext("By then: %(counts)s.") % {"counts": ", ".join(counts)}
    return sentence


def step_label(data: dict[str, Any]) -> str:
    """The scan's step in words (a contract scan object)."""
    return selectors.step_label(
        step=data.get("step", ""), artists_to_fetch=data.get("artistsToFetch") or 0
    )


def scan_counts_in_words(data: dict[str, Any]) -> tuple[str, str]:
    """(counts, note) of a contract scan object, in the words the page script also uses.

    Songs are Spotify's entries read so far out of Spotify's total; artists are only those
    whose genres Swedify had to look up (the shared cache knows the others), so the number
    differs from the artists of the result, and the note says so. Once every page is read,
    the note also explains entries that are not songs Swedify can sort.
    """
    total = data.get("tracksTotal") or 0
    found = data.get("tracksFound") or 0
    to_fetch = data.get("artistsToFetch") or 0
    fetched = data.get("artistsFetched") or 0
    skipped = data.get("tracksSkipped") or 0
    counts = []
    if found or total:
        if total:
            counts.append(
                ngettext(
                    "%(found)s of %(total)s song read", "%(found)s of %(total)s songs read", total
                )
                % {"found": grouped(found), "total": grouped(total)}
            )
        else:
            counts.append(
                ngettext("%(n)s song read", "%(n)s songs read", found) % {"n": grouped(found)}
            )
    if to_fetch:
        counts.append(
            ngettext(
                "%(done)s of %(total)s artist looked up",
                "%(done)s of %(total)s artists looked up",
                to_fetch,
            )
            % {"done": grouped(fetched), "total": grouped(to_fetch)}
        )
    notes = []
    if skipped:
        notes.append(
            ngettext(
                "%(n)s entry of your library is not counted: a local file, a song no longer "
                "available on Spotify, or a song already counted from another source.",
                "%(n)s entries of your library are not counted: local files, songs no longer "
                "available on Spotify, or songs already counted from another source.",
                skipped,
            )
            % {"n": grouped(skipped)}
        )
    if to_fetch:
        notes.append(
            gettext(
                "Only artists whose genres Swedify does not know yet are looked up, so your "
                "library may have more artists than this."
            )
        )
    return " · ".join(counts), " ".join(notes)


def scan_view(data: dict[str, Any], *, now: datetime) -> dict[str, Any]:
    """What the progress panel shows for one contract scan object (the script renders the
    same fields from the polled JSON)."""
    status = data.get("status", "")
    active = status in Scan.ACTIVE
    counts, note = scan_counts_in_words(data)
    percent = data.get("percent")
    resume_at = None
    resume_in = ""
    if status == Scan.Status.PAUSED and data.get("resumeAt"):
        resume_at = datetime.fromisoformat(data["resumeAt"].replace("Z", "+00:00"))
        minutes = max(0, round((resume_at - now).total_seconds() / 60))
        if minutes < 1:
            resume_in = gettext("in less than a minute")
        else:
            resume_in = gettext("in about %(n)d min") % {"n": minutes}
    # A queued scan has not started any step: its step would read as if it had.
    show_step = status in (Scan.Status.RUNNING, Scan.Status.PAUSED)
    return {
        "id": data.get("id", ""),
        "status": status,
        "title": STATUS_TITLES.get(status, status),
        "step": step_label(data) if show_step else "",
        "counts": counts,
        "note": note,
        "percent": percent if active and isinstance(percent, int) else None,
        "eta": eta_in_words(data.get("etaSeconds")) if status == Scan.Status.RUNNING else "",
        "resume_at": resume_at,
        "resume_in": resume_in,
        "error": scan_error_in_words(data.get("error")) if status in ("failed", "paused") else "",
    }


# --- Pages ---------------------------------------------------------------------------------


# One genre row; format_html_join escapes every value (names are listener data, any text).
GENRE_ROW = (
    '<li class="genre-row" data-count="{}" data-family="{}"><label>'
    '<input type="checkbox" class="js-genre" value="{}"> <span class="genre-name">{}</span>'
    '</label> <span class="genre-count">{}</span></li>\n'
)


def _nav_context(account: Any) -> dict[str, Any]:
    return {"account": account, "poll_interval_ms": POLL_INTERVAL_MS}


def _scan_form_context(sources: list[str]) -> dict[str, Any]:
    """What the scan form and the retry button start with: the sources of the last scan."""
    sources = [source for source in sources if isinstance(source, str)] or ["liked"]
    return {
        "scan_sources_json": json.dumps(sources),
        "scan_liked": "liked" in sources,
        "scan_playlists": "\n".join(
            source.split(":", 1)[1] for source in sources if source.startswith("playlist:")
        ),
    }


def genre_rows_html(summary: list[dict[str, Any]]) -> SafeString:
    """The genre list's rows, escaped. Built in Python rather than a template loop because a
    library can have a thousand genres and the page must answer in well under 100 ms."""
    return format_html_join(
        "",
        GENRE_ROW,
        (
            (
                row["count"],
                genre_family(row["name"]),
                row["name"],
                row["name"],
                grouped(row["count"]),
            )
            for row in summary
        ),
    )


def _library_context(user: Any, now: datetime) -> dict[str, Any]:
    """The home page's library card: the latest result and its age."""
    result = selectors.latest_result(user=user, with_summary=False)
    return {
        "result": result,
        "result_age": age_in_words(result.created_at, now) if result else "",
    }


@require_safe
@never_cache  # a listener's own, live data: no shared or stale copies
def home(request: HttpRequest) -> HttpResponse:
    """Signed out: what Swedify does and the sign-in button. Signed in: library status, the
    scan form and the live progress of the latest scan."""
    now = timezone.now()
    error_key = request.GET.get("error", "")
    sign_in_error = SIGN_IN_ERRORS.get(error_key, UNKNOWN_SIGN_IN_ERROR) if error_key else ""
    account = selectors.listener_account(user=request.user)
    context: dict[str, Any] = {
        **_nav_context(account),
        "sign_in_error": sign_in_error,
        "sign_in_retry": error_key not in SIGN_IN_ERRORS_NO_RETRY,
        "notice": NOTICES.get(request.GET.get("notice", "")) if account is None else None,
        # Signed in to Swedify but Spotify refused the stored token (or no account linked).
        "must_reconnect": account is None and request.user.is_authenticated,
    }
    if account is not None:
        scan = selectors.latest_scan(user=request.user)
        # A finished scan is summed up by the library card; the panel shows the others.
        show_scan = scan is not None and scan.status != Scan.Status.SUCCEEDED
        context.update(
            **_library_context(request.user, now),
            scan=scan_view(selectors.scan_json(scan), now=now) if show_scan else None,
            **_scan_form_context(list(scan.sources or []) if scan else []),
        )
    return render(request, "genres/home.html", context)


@require_safe
@never_cache
def library_card(request: HttpRequest) -> HttpResponse:
    """The home page's library card alone (HTML), which the page script swaps in when a scan
    ends, so the card never shows the result of the scan before."""
    account = selectors.listener_account(user=request.user)
    if account is None:
        return HttpResponse(status=401)
    context = {"account": account, **_library_context(request.user, timezone.now())}
    return render(request, "genres/_library_card.html", context)


def sign_in_required() -> HttpResponseRedirect:
    """Home, with the notice saying that this page needs a signed-in listener."""
    return HttpResponseRedirect("/?" + urlencode({"notice": "sign_in_required"}))


def _by_count(row: dict[str, Any]) -> tuple[int, str]:
    return (-row["count"], row["name"])


@require_safe
@never_cache
def genres_page(request: HttpRequest) -> HttpResponse:
    """Every genre of the latest successful scan with its count; redirects home (saying why)
    unless a listener is signed in."""
    account = selectors.listener_account(user=request.user)
    if account is None:
        return sign_in_required()
    now = timezone.now()
    result = selectors.latest_result(user=request.user)
    active = selectors.active_scan(user=request.user)
    # Sorted here too (count descending, then name, as the contract sorts), so a row written
    # by another version in another order still reads right.
    summary = sorted(result.summary or [], key=_by_count) if result else []
    # "Unclassified" becomes a playlist only when no real genre carries that name.
    unclassified_selectable = not any(row["name"] == UNCLASSIFIED for row in summary)
    # The latest playlist job, finished or not: its results stay on the page after a reload.
    # The listener's queued or running job first (at most one), else the latest.
    running = Case(When(status__in=PLAYLIST_JOB_ACTIVE, then=Value(0)), default=Value(1))
    latest_job = (
        PlaylistJob.objects.filter(user_id=request.user.pk)
        .order_by(running, "-created_at")
        .values_list("id", "status")
        .first()
    )
    job_active = bool(latest_job) and latest_job[1] in PLAYLIST_JOB_ACTIVE
    families_present = {genre_family(row["name"]) for row in summary}
    if result is not None:
        sources = list(result.scan.sources or [])
    else:
        sources = list(active.sources or []) if active else []
    context = {
        **_nav_context(account),
        **_scan_form_context(sources),
        "result": result,
        "result_age": age_in_words(result.created_at, now) if result else "",
        "rows": summary,
        "rows_html": genre_rows_html(summary),
        "has_rows": bool(summary) or bool(result and result.unclassified_count),
        "group_by_family": len(summary) >= COLLAPSE_FAMILIES_FROM,
        "flat_page_rows": FLAT_PAGE_ROWS,
        "unclassified_selectable": unclassified_selectable,
        "unclassified_name": UNCLASSIFIED,
        "families_json": json.dumps(
            [[family, family_label(family)] for family in FAMILIES if family in families_present]
        ),
        "scan": scan_view(selectors.scan_json(active), now=now) if active else None,
        "playlist_job_id": str(latest_job[0]) if latest_job else "",
        "playlist_job_active": job_active,
        "genre_playlists": selectors.genre_playlists(user=request.user),
        "max_genres": MAX_GENRES,
        # The form's suggestion in the page's language; the API's default stays the contract's.
        "default_name_pattern": gettext(DEFAULT_NAME_PATTERN),
        "max_pattern_length": MAX_PATTERN_LENGTH,
        "max_description_length": MAX_DESCRIPTION_LENGTH,
    }
    return render(request, "genres/genres.html", context)
