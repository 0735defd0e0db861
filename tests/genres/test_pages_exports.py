"""The genres exports: the listener's own result as JSON or CSV, safe in a spreadsheet."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.test import Client

from tests.genres.test_pages import make_listener, make_result, signed_in


def csv_rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")  # spreadsheet programs then read UTF-8 right
    return list(csv.reader(io.StringIO(body[1:])))


@pytest.mark.django_db
def test_the_json_export_is_the_contract_payload_as_an_attachment() -> None:
    user = make_listener()
    result = make_result(
        user,
        [("swedish pop", 2), ("indie rock", 1)],
        unclassified=1,
        tracks_per_genre={"swedish pop": ["a", "b"], "indie rock": ["b"], "": ["c"]},
    )
    response = signed_in(user).get("/genres/export.json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response["Content-Disposition"].startswith('attachment; filename="swedify-genres-')
    data = json.loads(response.content)
    assert data["scanId"] == str(result.scan_id)
    assert data["genres"] == [
        {"name": "swedish pop", "count": 2, "trackIds": ["a", "b"]},
        {"name": "indie rock", "count": 1, "trackIds": ["b"]},
    ]
    assert data["unclassified"] == {"count": 1, "trackIds": ["c"]}
    assert set(data["tracks"]) == {"a", "b", "c"}  # additive, after the contract's keys


@pytest.mark.django_db
def test_the_csv_export_has_a_row_per_genre_and_track_with_unclassified_last() -> None:
    user = make_listener()
    make_result(
        user,
        [("swedish pop", 2), ("indie rock", 1)],
        unclassified=1,
        tracks_per_genre={"swedish pop": ["a", "b"], "indie rock": ["b"], "": ["c"]},
    )
    response = signed_in(user).get("/genres/export.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].endswith('.csv"')
    # The first three columns are the original ones; link and artists were added after them.
    assert [row[:3] for row in csv_rows(response)] == [
        ["genre", "count", "track_id"],
        ["swedish pop", "2", "a"],
        ["swedish pop", "2", "b"],
        ["indie rock", "1", "b"],
        ["(unclassified)", "1", "c"],
    ]


@pytest.mark.django_db
def test_the_csv_export_can_list_genres_only() -> None:
    user = make_listener()
    make_result(user, [("svensk visa", 3), ("åäö", 2)])
    response = signed_in(user).get("/genres/export.csv", {"detail": "genres"})
    assert csv_rows(response) == [["genre", "count"], ["svensk visa", "3"], ["åäö", "2"]]


@pytest.mark.parametrize(
    ("name", "cell"),
    [
        ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("  =1", "'  =1"),
        ('a, "quoted" genre', 'a, "quoted" genre'),
        ("post-punk", "post-punk"),
    ],
)
@pytest.mark.django_db
def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_are_neutralised(
    name: str, cell: str
) -> None:
    user = make_listener()
    make_result(user, [(name, 1)], tracks_per_genre={name: ["t1"]})
    rows = csv_rows(signed_in(user).get("/genres/export.csv"))
    assert rows[1][:3] == [cell, "1", "t1"]


@pytest.mark.django_db
def test_exports_hold_only_the_signed_in_listeners_result() -> None:
    alice = make_listener("alice")
    bob = make_listener("bob")
    make_result(alice, [("alice genre", 1)])
    make_result(bob, [("bob genre", 1)])
    client = signed_in(alice)
    assert b"bob genre" not in client.get("/genres/export.json").content
    assert b"bob genre" not in b"".join(client.get("/genres/export.csv").streaming_content)


@pytest.mark.parametrize("path", ["/genres/export.csv", "/genres/export.json"])
@pytest.mark.django_db
def test_exports_need_a_signed_in_listener(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == "/?notice=sign_in_required"


@pytest.mark.parametrize("path", ["/genres/export.csv", "/genres/export.json"])
@pytest.mark.django_db
def test_exports_before_the_first_scan_say_so(path: str) -> None:
    response = signed_in(make_listener()).get(path)
    assert response.status_code == 404
    assert b"No scan yet" in response.content


@pytest.mark.parametrize("path", ["/genres", "/genres/export.csv", "/genres/export.json"])
@pytest.mark.django_db
def test_pages_refuse_writes_with_405(path: str) -> None:
    user = make_listener()
    make_result(user, [("pop", 1)])
    assert signed_in(user).post(path).status_code == 405
