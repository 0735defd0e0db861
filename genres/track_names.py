"""Song and album names from Spotify's page items, made safe to store and export.

Names are anyone's text (an uploader names a song what they like): a scan keeps them bounded
and free of control characters before they reach the database (PostgreSQL's COPY refuses a
NUL, and a lone surrogate cannot be encoded as UTF-8) or a CSV cell (a line break inside a
name splits the row in careless readers). The exports' formula guard and HTML escaping still
apply to every cell: what is stored here is plain text, not trusted text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

# LibraryTrack.name and .album hold at most this many characters.
NAME_MAX_LENGTH = 512
# Tabs, line breaks and other separators become one blank, so words stay apart.
_BREAKS = re.compile(r"[\t\n\v\f\r\x1c-\x1f\x85\u2028\u2029]+")
# Categories dropped outright: control characters (NUL, ESC, DEL, C1) and surrogates.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cs"})


def clean_name(value: object) -> str:
    """``value`` as a name to store: "" unless a string; breaks become blanks, other control
    characters and lone surrogates are dropped, outer blanks stripped, then cut to
    ``NAME_MAX_LENGTH`` characters."""
    if not isinstance(value, str):
        return ""
    text = _BREAKS.sub(" ", value)
    text = "".join(ch for ch in text if unicodedata.category(ch) not in _DROPPED_CATEGORIES)
    return text.strip()[:NAME_MAX_LENGTH].rstrip()


def track_names(item: Mapping[str, Any]) -> tuple[str, str]:
    """(song name, album name) of a liked or playlist page item, "" for what is missing."""
    track = item.get("track")
    if not isinstance(track, Mapping):
        return "", ""
    album = track.get("album")
    album_name = album.get("name") if isinstance(album, Mapping) else None
    return clean_name(track.get("name")), clean_name(album_name)
