"""The sandbox's own pages list users and playlists with every name escaped."""

from __future__ import annotations

from sandbox.testing import RunningSandbox
from tests.sandbox.conftest import http


def test_the_index_lists_the_users_with_links(sandbox: RunningSandbox) -> None:
    answer = http("GET", f"{sandbox.url}/sandbox/")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    for user_id in ("listener", "bigfan", "newbie", "outsider"):
        assert f'<a href="/sandbox/users/{user_id}">{user_id}</a>' in answer.text
    assert "swedify-sandbox" in answer.text


def test_a_user_page_shows_playlists_with_names_escaped(sandbox: RunningSandbox) -> None:
    sandbox.add_playlist("listener", name="<script>alert(1)</script>", tracks=3)
    answer = http("GET", f"{sandbox.url}/sandbox/users/listener")
    assert answer.status == 200
    page = answer.text
    assert "<h2>&lt;script&gt;alert(1)&lt;/script&gt;</h2>" in page
    assert "<script>" not in page
    assert "<h2>Road trip</h2>" in page
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    first_track = sandbox.playlists("listener")[0]["items"][0]
    assert first_track["name"].replace("'", "&#x27;") in page


def test_an_unknown_user_page_answers_404(sandbox: RunningSandbox) -> None:
    assert http("GET", f"{sandbox.url}/sandbox/users/nobody").status == 404
