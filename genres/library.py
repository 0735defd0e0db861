"""A listener's library rows (LibraryTrack) as a scan writes them: thousands per full read."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from django.db import connection, transaction

from genres.models import LibraryTrack

# PostgreSQL statements of library_rows_upsert (constants: nothing in them comes from input).
_UPSERT_TEMP_TABLE_SQL = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS swedify_library_rows (user_id bigint, source text, "
    'track_id text, artist_ids jsonb, added_at timestamptz, "position" integer, seen_scan uuid, '
    "name text, album text) ON COMMIT DELETE ROWS"
)
_UPSERT_COPY_SQL = (
    'COPY swedify_library_rows ("user_id", "source", "track_id", "artist_ids", "added_at", '
    '"position", "seen_scan", "name", "album") FROM STDIN'
)
_UPSERT_MERGE_SQL = (
    'INSERT INTO "genres_librarytrack" ("user_id", "source", "track_id", "artist_ids", '
    '"added_at", "position", "seen_scan", "name", "album") SELECT "user_id", "source", '
    '"track_id", "artist_ids", "added_at", "position", "seen_scan", "name", "album" '
    'FROM swedify_library_rows ON CONFLICT ("user_id", "source", "track_id") DO UPDATE SET '
    '"artist_ids" = EXCLUDED."artist_ids", "added_at" = EXCLUDED."added_at", '
    '"position" = EXCLUDED."position", "seen_scan" = EXCLUDED."seen_scan", '
    '"name" = EXCLUDED."name", "album" = EXCLUDED."album"'
)
_UPSERT_CLEAR_SQL = "DELETE FROM swedify_library_rows"


class LibraryRow(NamedTuple):
    """The values of one LibraryTrack row: far cheaper to build than a model instance, for
    the thousands of rows of a full read."""

    user_id: int
    source: str
    track_id: str
    artist_ids: list[str]
    added_at: datetime | None
    position: int
    seen_scan: uuid.UUID | None
    # Cleaned by genres.track_names; defaults keep rows built without names valid.
    name: str = ""
    album: str = ""

    def model(self) -> LibraryTrack:
        return LibraryTrack(**self._asdict())


def library_rows_upsert(*, rows: Sequence[LibraryRow]) -> None:
    """Insert library rows, or update the ones a listener already has (unique per user,
    source and track): artist ids, added_at, position, seen_scan and the song's and album's
    names take the new values.

    On PostgreSQL the rows are COPYed into a temporary table and merged with one INSERT ... ON
    CONFLICT: a full read writes thousands of rows while its pages arrive, and bulk_create's
    per-value work on this thread (about four times the CPU) held the read back.
    """
    if connection.vendor != "postgresql":
        LibraryTrack.objects.bulk_create(
            [row.model() for row in rows],
            update_conflicts=True,
            unique_fields=["user", "source", "track_id"],
            update_fields=["artist_ids", "added_at", "position", "seen_scan", "name", "album"],
        )
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_UPSERT_TEMP_TABLE_SQL)
        with cursor.cursor.copy(_UPSERT_COPY_SQL) as copy:
            for row in rows:
                # LibraryRow's fields are in the COPY's column order.
                copy.write_row(row._replace(artist_ids=json.dumps(row.artist_ids)))
        cursor.execute(_UPSERT_MERGE_SQL)
        # Emptied at once, not only at commit: a caller's outer transaction may upsert again.
        cursor.execute(_UPSERT_CLEAR_SQL)
