"""The genres exports: the listener's latest result as JSON or CSV, with names and links.

- ``/genres/export.json``: the contract payload of ``GET /api/genres`` (with track ids), plus
  (additive) ``"tracks"``: per track id of the result, ``{"url": <Spotify link>,
  "artists": [<names>], "name": <song name>, "album": <album name>}``.
- ``/genres/export.csv``: one row per genre and track, columns
  ``genre,count,track_id,spotify_url,artists,track_name,album_name`` (``count`` is the genre's
  track count, repeated on each of its rows; ``artists`` their names joined with "; "; the
  name columns came last so readers of the first five keep working); tracks without a
  genre come last under the genre ``(unclassified)``. ``?detail=genres`` gives one row per
  genre, columns ``genre,count``. UTF-8 with a byte-order mark, so spreadsheet programs read
  "å ä ö" right. Every cell that a spreadsheet would read as a formula (starting with
  = + - @, a tab or a carriage return, also after leading blanks) is prefixed with ``'``
  (``genres.pages.csv_cell``): genre, artist, song and album names are anyone's text.

A song's and album's names are "" when the library has none for it: the track left the
library since the scan, or no scan has run since names were kept (the first one after that
reads every source fully, see migration 0005).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseNotFound, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from genres import selectors
from genres.pages import CSV_UNCLASSIFIED, csv_cell, sign_in_required

CSV_TRACK_COLUMNS = [
    "genre",
    "count",
    "track_id",
    "spotify_url",
    "artists",
    "track_name",
    "album_name",
]
CSV_GENRE_COLUMNS = ["genre", "count"]
# Between artist names in one CSV cell (a comma is common inside names).
ARTIST_SEPARATOR = "; "


def _export_payload(request: HttpRequest) -> dict[str, Any] | HttpResponse:
    if selectors.listener_account(user=request.user) is None:
        return sign_in_required()
    payload = selectors.genres_payload(user=request.user)
    if payload is None:
        return HttpResponseNotFound(
            "No scan yet: scan your library first.", content_type="text/plain; charset=utf-8"
        )
    return payload


def _filename(payload: dict[str, Any], extension: str) -> str:
    stamp = "".join(ch for ch in str(payload.get("cachedAt") or "")[:10] if ch in "0123456789-")
    stamp = stamp or timezone.now().date().isoformat()
    return f"swedify-genres-{stamp}.{extension}"


def _result_track_ids(payload: dict[str, Any]) -> set[str]:
    entries = [*(payload.get("genres") or []), payload.get("unclassified") or {}]
    return {track_id for entry in entries for track_id in entry.get("trackIds") or []}


def _track_entry(details: dict[str, dict[str, Any]], track_id: str) -> dict[str, Any]:
    # A result can hold a track the library no longer has (removed since the scan): its link
    # is still right, its artists and names unknown.
    return details.get(track_id) or {
        "url": selectors.TRACK_URL.format(track_id),
        "artists": [],
        "name": "",
        "album": "",
    }


@require_safe
@never_cache
def export_json(request: HttpRequest) -> HttpResponse:
    payload = _export_payload(request)
    if isinstance(payload, HttpResponse):
        return payload
    details = selectors.track_details(user=request.user)
    payload["tracks"] = {
        track_id: _track_entry(details, track_id) for track_id in sorted(_result_track_ids(payload))
    }
    body = json.dumps(payload, ensure_ascii=False, indent=2)
    # As the API's answers (views.ApiResponse): names are hostile data, and a download opened
    # in a browser or pasted into a page must stay inert. JSON readers see the same text.
    body = body.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{_filename(payload, "json")}"'
    return response


class _Echo:
    """A file-like object whose write returns the line, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(
    payload: dict[str, Any], *, details: dict[str, dict[str, Any]] | None
) -> Iterator[str]:
    """The CSV's lines; per track when ``details`` is given, else per genre."""
    writer = csv.writer(_Echo())
    yield "\ufeff"
    yield writer.writerow(CSV_GENRE_COLUMNS if details is None else CSV_TRACK_COLUMNS)
    unclassified = payload.get("unclassified") or {}
    entries = [(entry["name"], entry) for entry in payload.get("genres") or []]
    entries.append((CSV_UNCLASSIFIED, unclassified))
    for name, entry in entries:
        count = entry.get("count", 0)
        if name == CSV_UNCLASSIFIED and not count:
            continue
        genre = csv_cell(name)
        if details is None:
            yield writer.writerow([genre, count])
            continue
        for track_id in entry.get("trackIds") or []:
            track = _track_entry(details, track_id)
            artists = ARTIST_SEPARATOR.join(track["artists"])
            yield writer.writerow(
                [
                    genre,
                    count,
                    csv_cell(track_id),
                    csv_cell(track["url"]),
                    csv_cell(artists),
                    csv_cell(track["name"]),
                    csv_cell(track["album"]),
                ]
            )


@require_safe
@never_cache
def export_csv(request: HttpRequest) -> HttpResponse:
    payload = _export_payload(request)
    if isinstance(payload, HttpResponse):
        return payload
    per_track = request.GET.get("detail", "tracks") != "genres"
    details = selectors.track_details(user=request.user) if per_track else None
    response = StreamingHttpResponse(
        _csv_lines(payload, details=details), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{_filename(payload, "csv")}"'
    return response
