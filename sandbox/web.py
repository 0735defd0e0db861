"""Small request and response types shared by the accounts service, the Web API and the
control API, so handlers are plain functions that are easy to read and test."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

JSON_TYPE = "application/json; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"
# The sandbox pages render hostile names; even if escaping failed, nothing would run.
PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    base_url: str  # http://127.0.0.1:<port>, as the client addressed us

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def form(self) -> dict[str, str]:
        fields = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {name: values[0] for name, values in fields.items()}

    def json(self) -> Any:
        """The JSON body; raises ValueError when it is not JSON."""
        if not self.body.strip():
            return None
        return json.loads(self.body.decode("utf-8"))

    @property
    def query_string(self) -> str:
        return urlencode([(k, v) for k, vs in self.query.items() for v in vs])


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Set when the connection must be closed without any answer (a scripted fault).
    drop: bool = False


def json_response(status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, ensure_ascii=False).encode("utf-8")
    return Response(status, body, {"Content-Type": JSON_TYPE, **(headers or {})})


def api_error(status: int, message: str, reason: str | None = None, **headers: str) -> Response:
    """Spotify's Web API error shape: {"error": {"status", "message"[, "reason"]}}."""
    error: dict[str, Any] = {"status": status, "message": message}
    if reason:
        error["reason"] = reason
    return json_response(status, {"error": error}, headers)


def html_response(status: int, page: str, *, form_target: str = "") -> Response:
    """An HTML page. ``form_target``: an origin its form may lead to; browsers apply
    form-action to the redirect that answers the form too (the consent page's Approve)."""
    policy = f"{PAGE_POLICY} {form_target}" if form_target else PAGE_POLICY
    headers = {"Content-Type": HTML_TYPE, "Content-Security-Policy": policy}
    return Response(status, page.encode("utf-8"), headers)


def redirect(location: str) -> Response:
    return Response(302, b"", {"Location": location})
