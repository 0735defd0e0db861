"""The sandbox's HTML pages: the consent page, the user list and a user's playlists.

Every piece of data goes through :func:`html.escape`; names in the catalog are hostile on
purpose, and these pages are where a human would notice.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from sandbox.state import Playlist, Sandbox, User

# How many items of one playlist the user page shows; the control API returns them all.
PAGE_ITEMS = 500

# Colours reach WCAG AA (4.5:1 for text): Spotify's own green (#1db954) under white text is
# only 2.6:1, so the Approve button uses a darker green.
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 56rem; padding: 0 1rem;
       color: #191414; }
main { display: block; }
a { color: #0d6e30; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; }
td, th { border-bottom: 1px solid #ddd; padding: .3rem .5rem; text-align: left; }
.muted { color: #595959; } code { background: #f3f3f3; padding: 0 .2rem; overflow-wrap: anywhere; }
.table-scroll { overflow-x: auto; }
button { font-size: 1rem; padding: .5rem 1.5rem; margin-right: .5rem; cursor: pointer; }
.approve { background: #117a36; color: white; border: 0; border-radius: 2rem; }
.deny { background: white; color: #191414; border: 1px solid #767676; border-radius: 2rem; }
select { font: inherit; padding: .25rem; }
"""


def _page(title: str, body: str) -> str:
    """A whole page: the body's content inside the main landmark, readable on a phone."""
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def error_page(message: str) -> str:
    return _page("Error", f"<h1>Error</h1><p>{escape(message)}</p>")


def authorize_page(
    params: dict[str, str], users: Iterable[User], selected: str, scopes: list[str]
) -> str:
    """The consent page: a form that POSTs the same parameters back with a decision."""
    hidden = "".join(
        f'<input type=hidden name="{escape(name)}" value="{escape(value)}">'
        for name, value in params.items()
        if name not in ("sandbox_user", "sandbox_decision")
    )
    # A user who is not allow-listed can still agree here, as on Spotify; the Web API then
    # refuses their token (403), which is how Spotify's Development Mode says it.
    options = "".join(
        f'<option value="{escape(u.id)}"{" selected" if u.id == selected else ""}>'
        f"{escape(u.spec.display_name)} ({escape(u.id)})"
        f"{'' if u.spec.allowlisted else ', not allow-listed: the Web API will refuse them'}"
        "</option>"
        for u in users
    )
    scope_items = "".join(f"<li><code>{escape(s)}</code></li>" for s in scopes) or (
        "<li class=muted>no scopes: only public data</li>"
    )
    body = (
        "<h1>Spotify sandbox: authorize</h1>"
        f"<p>The app <code>{escape(params.get('client_id', ''))}</code> asks to access your "
        "Spotify account.</p>"
        f"<p>Scopes:</p><ul>{scope_items}</ul>"
        '<form method=post action="/authorize">'
        f"{hidden}"
        f"<p><label>Sign in as <select name=sandbox_user id=sandbox_user>{options}</select>"
        "</label></p>"
        "<p><button class=approve type=submit name=sandbox_decision value=approve>Approve</button>"
        "<button class=deny type=submit name=sandbox_decision value=deny>Deny</button></p>"
        "</form>"
        f"<p class=muted>Redirects to <code>{escape(params.get('redirect_uri', ''))}</code>. "
        'This is the bundled sandbox, not Spotify. <a href="/sandbox/">Sandbox users</a></p>'
    )
    return _page("Authorize - Spotify sandbox", body)


def index_page(sandbox: Sandbox, base_url: str) -> str:
    rows = "".join(
        "<tr>"
        f'<td><a href="/sandbox/users/{quote(u.id)}">{escape(u.id)}</a></td>'
        f"<td>{escape(u.spec.display_name)}</td>"
        f"<td>{len(u.library)}</td><td>{u.spec.artists}</td>"
        f"<td>{len(u.playlist_ids)}</td>"
        f"<td>{'yes' if u.spec.allowlisted else 'no'}</td>"
        "</tr>"
        for u in sandbox.users.values()
    )
    config = sandbox.config
    mode = "Extended Quota" if sandbox.options["extended_quota"] else "Development Mode"
    body = (
        "<h1>Spotify sandbox</h1>"
        f"<p>Accounts service: <code>{escape(base_url)}</code> "
        f"(<code>/authorize</code>, <code>/api/token</code>); Web API: "
        f"<code>{escape(base_url)}/v1</code>; mode: {mode}.</p>"
        f"<p>Client id <code>{escape(config.client_id)}</code>, secret "
        f"<code>{escape(config.client_secret)}</code>.</p>"
        "<div class=table-scroll><table><tr><th>user</th><th>name</th><th>liked tracks</th>"
        f"<th>artists</th><th>playlists</th><th>allow-listed</th></tr>{rows}</table></div>"
        "<p class=muted>Control API (JSON): <a href=/sandbox/users>users</a>, "
        "<a href=/sandbox/stats>stats</a>, <a href=/sandbox/requests>requests</a>, "
        "<a href=/sandbox/faults>faults</a>, <a href=/sandbox/config>config</a>.</p>"
    )
    return _page("Spotify sandbox", body)


def _playlist_section(playlist: Playlist) -> str:
    rows = "".join(
        f"<tr><td>{n}</td><td>{escape(item.track.name)}</td>"
        f"<td>{escape(', '.join(a.name for a in item.track.artists))}</td></tr>"
        for n, item in enumerate(playlist.items[:PAGE_ITEMS], start=1)
    )
    more = len(playlist.items) - PAGE_ITEMS
    note = f"<p class=muted>and {more} more</p>" if more > 0 else ""
    visibility = "public" if playlist.public else "private"
    return (
        f"<h2>{escape(playlist.name)}</h2>"
        f"<p class=muted>{len(playlist.items)} items, {visibility}, owner "
        f"{escape(playlist.owner_name)} (<code>{escape(playlist.owner_id)}</code>), id "
        f"<code>{escape(playlist.id)}</code></p>"
        + (f"<p>{escape(playlist.description)}</p>" if playlist.description else "")
        + (
            "<div class=table-scroll><table><tr><th>#</th><th>track</th><th>artists</th></tr>"
            f"{rows}</table></div>"
            if rows
            else ""
        )
        + note
    )


def user_page(sandbox: Sandbox, user: User) -> str:
    playlists = [sandbox.playlists[pid] for pid in user.playlist_ids]
    sections = "".join(_playlist_section(p) for p in playlists) or "<p>No playlists.</p>"
    body = (
        f'<p><a href="/sandbox/">All sandbox users</a></p>'
        f"<h1>{escape(user.spec.display_name)} <span class=muted>({escape(user.id)})</span></h1>"
        f"<p>{len(user.library)} liked tracks by {user.spec.artists} artists. "
        f'<a href="/sandbox/users/{quote(user.id)}/playlists">playlists as JSON</a>, '
        f'<a href="/sandbox/users/{quote(user.id)}/truth">genre truth as JSON</a></p>'
        f"{sections}"
    )
    return _page(f"{user.spec.display_name} - Spotify sandbox", body)
