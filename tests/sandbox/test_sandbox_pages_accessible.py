"""The sandbox's pages are pages people use too: a main landmark, a viewport for phones, AA
colours, and a consent page that says which users Spotify's Development Mode will refuse."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlencode

import pytest

from sandbox.testing import RunningSandbox
from tests.genres.test_pages_contrast import contrast
from tests.sandbox.conftest import authorize_query, http


class Landmarks(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def count(self, tag: str) -> int:
        return sum(1 for name, _ in self.tags if name == tag)


@pytest.mark.parametrize("path", ["/sandbox/", "/sandbox/users/listener", "/authorize?"])
def test_every_sandbox_page_has_one_main_landmark_and_a_viewport(
    sandbox: RunningSandbox, path: str
) -> None:
    url = f"{sandbox.url}{path}"
    if path.endswith("?"):
        url += urlencode(authorize_query())
    answer = http("GET", url)
    assert answer.status == 200
    page = Landmarks(answer.text)
    assert page.count("main") == 1
    viewports = [
        attrs for tag, attrs in page.tags if tag == "meta" and attrs.get("name") == "viewport"
    ]
    assert viewports
    assert "width=device-width" in (viewports[0]["content"] or "")
    assert ("html", {"lang": "en"}) in page.tags
    assert page.count("h1") == 1


def test_the_consent_page_marks_users_spotify_will_refuse(sandbox: RunningSandbox) -> None:
    page = http("GET", f"{sandbox.url}/authorize?{urlencode(authorize_query())}").text
    outsider = re.search(r'<option value="outsider">([^<]*)</option>', page)
    assert outsider
    assert "not allow-listed" in outsider.group(1)
    listener = re.search(r'<option value="listener" selected>([^<]*)</option>', page)
    assert listener
    assert "allow-listed" not in listener.group(1)


def test_the_sandbox_colours_reach_aa(sandbox: RunningSandbox) -> None:
    page = http("GET", f"{sandbox.url}/authorize?{urlencode(authorize_query())}").text
    approve = re.search(r"\.approve \{ background: (#[0-9a-f]{6}); color: white;", page)
    assert approve
    assert contrast(approve.group(1), "#ffffff") >= 4.5
    for colour in re.findall(r"(?<![-\w])color: (#[0-9a-f]{3,6})", page):
        assert contrast(colour, "#ffffff") >= 4.5, colour
