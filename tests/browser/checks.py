"""What every listener page is held to in the browser: no serious or critical axe-core
violation, headings in order, a one-line header on a phone, no word broken in the middle, and
a screenshot of it for people to look at.

Each check returns what is wrong as readable lines (empty when all is well), so a failing test
names the rule, the element and, for contrast, the colours: what the page's owner needs.
"""

from __future__ import annotations

import gettext as gnu_gettext
import re
from itertools import pairwise
from pathlib import Path
from typing import Any

from axe_playwright_python.sync_playwright import Axe

REPO_ROOT = Path(__file__).resolve().parents[2]
# Screenshots of every listener page (git-ignored, like the rest of var/); the README names it.
SCREENSHOTS_DIR = REPO_ROOT / "var" / "screenshots"

# The two sizes every listener page is checked and photographed at: a laptop and a phone
# (an iPhone 12-14's CSS viewport).
SIZES: dict[str, dict[str, int]] = {
    "desktop": {"width": 1280, "height": 800},
    "mobile": {"width": 390, "height": 844},
}
# Browser locales (they set Accept-Language) of the two languages of the listener UI.
LOCALES: dict[str, str] = {"en": "en-GB", "sv": "sv-SE"}

# axe-core impacts that fail a test; "moderate" and "minor" are reported by axe but do not.
BLOCKING_IMPACTS = frozenset({"serious", "critical"})
# WCAG 2.x A and AA plus axe's best practices (heading order, landmarks, region).
AXE_OPTIONS = {
    "resultTypes": ["violations"],
    "runOnly": {
        "type": "tag",
        "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"],
    },
}

_axe = Axe()


def _violation_lines(violation: dict[str, Any]) -> list[str]:
    lines = [f"{violation['id']} ({violation['impact']}): {violation['help']}"]
    for node in violation["nodes"]:
        target = " ".join(str(part) for part in node["target"])
        html = re.sub(r"\s+", " ", node.get("html", ""))[:160]
        summary = re.sub(r"\s+", " ", node.get("failureSummary", ""))
        lines.append(f"  at {target}: {html}")
        if summary:
            lines.append(f"    {summary}")
    return lines


def axe_problems(page: Any) -> list[str]:
    """The page's serious and critical axe-core violations, one block of lines each."""
    response = _axe.run(page, options=AXE_OPTIONS).response
    lines: list[str] = []
    for violation in response["violations"]:
        if violation.get("impact") in BLOCKING_IMPACTS:
            lines.extend(_violation_lines(violation))
    return lines


# Visible headings in document order, as [level, text].
_HEADINGS_JS = """() => Array.from(document.querySelectorAll('h1,h2,h3,h4,h5,h6'))
  .filter(h => h.getClientRects().length > 0)
  .map(h => [Number(h.tagName[1]), h.textContent.trim().replace(/\\s+/g, ' ')])"""


def heading_problems(page: Any) -> list[str]:
    """One h1 first, and no heading more than one level below the one before it (an h3
    straight under the h1 is a skipped level: screen-reader users lose the outline)."""
    headings = page.evaluate(_HEADINGS_JS)
    if not headings:
        return ["the page has no visible heading"]
    problems = []
    if headings[0][0] != 1:
        problems.append(f"the first heading is h{headings[0][0]} {headings[0][1]!r}, not an h1")
    if sum(1 for level, _ in headings if level == 1) > 1:
        problems.append(f"more than one h1: {[text for level, text in headings if level == 1]}")
    for (before, before_text), (level, text) in pairwise(headings):
        if level > before + 1:
            problems.append(f"h{level} {text!r} follows h{before} {before_text!r}")
    return problems


# The header's visible items (brand, links, buttons, names) and their vertical extent.
_HEADER_ROWS_JS = """() => {
  const header = document.querySelector('header');
  if (!header) return null;
  const items = Array.from(header.querySelectorAll('a, button, strong, span, select'))
    .filter(el => el.getClientRects().length > 0 && el.textContent.trim() !== '')
    // Not a skip link parked off screen until the keyboard reaches it.
    .filter(el => el.getBoundingClientRect().right > 0)
    .filter(el => !el.parentElement.closest('a, button, strong, span'));
  return {
    overflow: header.scrollWidth - header.clientWidth,
    items: items.map(el => {
      const rects = Array.from(el.getClientRects());
      return {text: el.textContent.trim(), top: Math.min(...rects.map(r => r.top)),
              bottom: Math.max(...rects.map(r => r.bottom)), lines: rects.length};
    }),
  };
}"""


def header_problems(page: Any) -> list[str]:
    """Every item of the site header on one line: they overlap vertically, none wraps, and
    the header does not scroll sideways."""
    data = page.evaluate(_HEADER_ROWS_JS)
    if data is None:
        return ["the page has no <header>"]
    problems = []
    items = data["items"]
    if data["overflow"] > 1:
        problems.append(f"the header is {data['overflow']} px wider than the screen")
    for item in items:
        if item["lines"] > 1:
            problems.append(f"header item {item['text']!r} wraps onto {item['lines']} lines")
    if items:
        lowest_top = max(item["top"] for item in items)
        highest_bottom = min(item["bottom"] for item in items)
        if lowest_top >= highest_bottom:
            rows = sorted({round(item["top"]) for item in items})
            problems.append(
                f"the header's items sit on {len(rows)} rows (tops {rows} px): "
                + ", ".join(f"{item['text']!r}@{round(item['top'])}" for item in items)
            )
    return problems


# Words (runs of letters and digits) whose glyphs lie on more than one line inside `selector`.
_BROKEN_WORDS_JS = """(selector) => {
  const broken = [];
  for (const root of document.querySelectorAll(selector)) {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const match of node.data.matchAll(/[\\p{L}\\p{N}]+/gu)) {
        const range = document.createRange();
        range.setStart(node, match.index);
        range.setEnd(node, match.index + match[0].length);
        const tops = new Set(Array.from(range.getClientRects())
          .filter(r => r.width > 0).map(r => Math.round(r.top)));
        if (tops.size > 1) broken.push(match[0]);
      }
    }
  }
  return broken;
}"""


def broken_words(page: Any, selector: str) -> list[str]:
    """Words that the layout split across two lines inside the elements matching selector."""
    return page.evaluate(_BROKEN_WORDS_JS, selector)


def screenshot(page: Any, name: str) -> Path:
    """Write the whole page to var/screenshots/<name>.png (replacing an earlier run's)."""
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    return path


def js_text(language: str, message: str, plural: str | None = None, n: int = 1) -> str:
    """A message of the page script's catalog (djangojs) in `language`, as its gettext or
    ngettext gives it (the English message when it is not translated)."""
    catalog = gnu_gettext.translation(
        "djangojs", localedir=REPO_ROOT / "locale", languages=[language], fallback=True
    )
    return catalog.ngettext(message, plural, n) if plural else catalog.gettext(message)
