"""The code that runs only on PostgreSQL, tested through what it promises on either database.

CI runs the suite on PostgreSQL (tests/test_ci_guards.py fails a CI run on anything else),
so there these tests drive the PostgreSQL branches: the library rows' COPY-and-merge upsert
(`seen_scan` included) and the health-check history's date drill-down in the admin. On
SQLite the same promises hold through the portable branches.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from deployments.models import Environment, HealthCheck
from genres.library import LibraryRow, library_rows_upsert
from genres.models import LibraryTrack

pytestmark = pytest.mark.django_db

ADDED = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def user():
    return get_user_model().objects.create_user("upserter")


def row(user, track_id: str, *, position: int, seen: uuid.UUID | None, **kw) -> LibraryRow:
    return LibraryRow(
        user_id=user.pk,
        source=kw.get("source", "liked"),
        track_id=track_id,
        artist_ids=kw.get("artist_ids", [f"artist-of-{track_id}"]),
        added_at=kw.get("added_at", ADDED),
        position=position,
        seen_scan=seen,
    )


def stored(user, source: str = "liked") -> dict[str, tuple]:
    return {
        track.track_id: (track.artist_ids, track.added_at, track.position, track.seen_scan)
        for track in LibraryTrack.objects.filter(user=user, source=source)
    }


def test_the_upsert_inserts_rows_with_every_value(user) -> None:
    scan = uuid.uuid4()

    library_rows_upsert(
        rows=[
            row(user, "t1", position=0, seen=scan, artist_ids=["a", "b"]),
            row(user, "t2", position=1, seen=scan, added_at=None, artist_ids=[]),
        ]
    )

    assert stored(user) == {
        "t1": (["a", "b"], ADDED, 0, scan),
        "t2": ([], None, 1, scan),
    }
    if connection.vendor == "postgresql":
        # The merge went through the session's temporary table, left empty for the next one.
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM swedify_library_rows")
            assert cursor.fetchone() == (0,)


def test_known_rows_take_the_new_values_and_the_scan_that_saw_them(user) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    library_rows_upsert(
        rows=[row(user, "t1", position=0, seen=first), row(user, "t2", position=1, seen=first)]
    )
    later = ADDED + timedelta(days=1)

    library_rows_upsert(
        rows=[
            row(user, "t2", position=0, seen=second, artist_ids=["new"], added_at=later),
            row(user, "t3", position=1, seen=second),
        ]
    )

    assert stored(user) == {
        "t1": (["artist-of-t1"], ADDED, 0, first),
        "t2": (["new"], later, 0, second),
        "t3": (["artist-of-t3"], ADDED, 1, second),
    }
    # What a full read then does: rows its scan did not see are gone from the library.
    LibraryTrack.objects.filter(user=user, source="liked").exclude(seen_scan=second).delete()
    assert set(stored(user)) == {"t2", "t3"}


def test_the_upsert_leaves_other_listeners_and_sources_alone(user) -> None:
    other = get_user_model().objects.create_user("other")
    scan = uuid.uuid4()
    library_rows_upsert(rows=[row(other, "t1", position=7, seen=None)])
    library_rows_upsert(rows=[row(user, "t1", position=3, seen=None, source="playlist:p1")])

    library_rows_upsert(rows=[row(user, "t1", position=0, seen=scan)])

    assert stored(other) == {"t1": (["artist-of-t1"], ADDED, 7, None)}
    assert stored(user, "playlist:p1") == {"t1": (["artist-of-t1"], ADDED, 3, None)}
    assert stored(user) == {"t1": (["artist-of-t1"], ADDED, 0, scan)}


def test_a_second_upsert_in_one_transaction_merges_only_its_own_rows(user) -> None:
    # A scan writes several runs of pages inside one outer transaction at times: the second
    # merge must not apply the first one's rows again over what changed in between.
    scan = uuid.uuid4()
    with transaction.atomic():
        library_rows_upsert(rows=[row(user, "t1", position=0, seen=scan)])
        LibraryTrack.objects.filter(user=user, track_id="t1").update(position=5)
        library_rows_upsert(rows=[row(user, "t2", position=1, seen=scan)])

    assert stored(user)["t1"][2] == 5
    assert stored(user)["t2"][2] == 1


def test_the_health_check_history_drills_down_by_date_where_the_database_can(client) -> None:
    admin = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")
    client = Client()
    client.force_login(admin)
    production = Environment.objects.create(
        name="production", listen_port=18000, blue_port=18001, green_port=18002
    )
    now = timezone.now()
    for days_ago in (0, 40):
        HealthCheck.objects.create(
            environment=production,
            source=HealthCheck.Source.PERIODIC,
            url=f"http://probe/{days_ago}",
            ok=True,
            latency_ms=5.0,
            at=now - timedelta(days=days_ago),
        )

    page = client.get("/admin/deployments/healthcheck/")

    assert page.status_code == 200
    changelist = page.context["cl"]
    if connection.vendor == "sqlite":
        assert changelist.date_hierarchy is None
        return
    assert changelist.date_hierarchy == "at"
    today = client.get(
        "/admin/deployments/healthcheck/",
        {"at__year": now.year, "at__month": now.month, "at__day": now.day},
    )
    assert today.status_code == 200
    assert [check.url for check in today.context["cl"].result_list] == ["http://probe/0"]
