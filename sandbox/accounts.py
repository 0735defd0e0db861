"""The accounts service: /authorize (consent page) and /api/token, with Spotify's checks.

Authorization Code flow with optional PKCE (S256). Codes are single use and short-lived;
refresh answers omit ``refresh_token`` unless rotation is switched on, as Spotify may.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sandbox import pages
from sandbox.tokens import AccessToken, AuthorizationCode
from sandbox.web import Request, Response, api_error, html_response, json_response, redirect

if TYPE_CHECKING:
    from sandbox.state import Sandbox

SCOPES = frozenset(
    {
        "app-remote-control",
        "playlist-modify-private",
        "playlist-modify-public",
        "playlist-read-collaborative",
        "playlist-read-private",
        "streaming",
        "ugc-image-upload",
        "user-follow-modify",
        "user-follow-read",
        "user-library-modify",
        "user-library-read",
        "user-modify-playback-state",
        "user-read-currently-playing",
        "user-read-email",
        "user-read-playback-position",
        "user-read-playback-state",
        "user-read-private",
        "user-read-recently-played",
        "user-top-read",
    }
)
# What Swedify asks for; the default scope of tokens issued through the control API.
SWEDIFY_SCOPE = (
    "user-library-read playlist-read-private playlist-modify-private playlist-modify-public "
    "user-follow-read user-top-read"
)
DEFAULT_USER = "listener"
# RFC 7636: a challenge is base64url(SHA-256) without padding, so exactly 43 characters;
# a verifier is 43-128 unreserved characters.
CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
LOOPBACK_HOSTS = ("127.0.0.1", "::1")


def issue_tokens(sandbox: Sandbox, user_id: str, scope: str) -> dict[str, object]:
    """A fresh token pair, as the token endpoint answers an authorization code."""
    with sandbox.lock:
        client_id = sandbox.config.client_id
        access = sandbox.auth.new_access(user_id, client_id, scope, sandbox.options["token_ttl"])
        refresh = sandbox.auth.new_refresh(
            user_id, client_id, scope, sandbox.options["refresh_ttl"]
        )
        return {
            "access_token": access.token,
            "token_type": "Bearer",
            "scope": scope,
            "expires_in": sandbox.options["token_ttl"],
            "refresh_token": refresh.token,
        }


def _with_query(uri: str, params: dict[str, str]) -> str:
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def redirect_uri_error(uri: str, allowed: list[str] | None) -> str | None:
    """Why Spotify would refuse this redirect URI, or None if it is acceptable."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return "INVALID_CLIENT: Invalid redirect URI"
    if parts.hostname == "localhost":
        return "INVALID_CLIENT: Insecure redirect URI"
    if allowed is not None:
        return None if uri in allowed else "INVALID_CLIENT: Invalid redirect URI"
    # Spotify's loopback rule: an IP literal over plain http, any port, any path.
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS and not parts.fragment:
        return None
    return "INVALID_CLIENT: Invalid redirect URI"


def _check_authorize(sandbox: Sandbox, params: dict[str, str]) -> Response | None:
    """The error answer for bad /authorize parameters, or None when they are fine."""
    if params.get("client_id") != sandbox.config.client_id:
        return html_response(400, pages.error_page("INVALID_CLIENT: Invalid client"))
    problem = redirect_uri_error(params.get("redirect_uri", ""), sandbox.options["redirect_uris"])
    if problem:
        return html_response(400, pages.error_page(problem))
    # From here on Spotify reports errors to the app, through the redirect URI.
    if params.get("response_type") != "code":
        return _deny(params, "unsupported_response_type")
    method = params.get("code_challenge_method")
    challenge = params.get("code_challenge")
    if challenge is not None or method is not None:
        if method != "S256":
            return _deny(params, "invalid_request", "code_challenge_method must be S256")
        if challenge is None or not CHALLENGE.fullmatch(challenge):
            return _deny(params, "invalid_request", "code_challenge must be 43 base64url chars")
    if set(params.get("scope", "").split()) - SCOPES:
        return _deny(params, "invalid_scope")
    return None


def _deny(params: dict[str, str], error: str, description: str | None = None) -> Response:
    answer = {"error": error}
    if description:
        answer["error_description"] = description
    if "state" in params:
        answer["state"] = params["state"]
    return redirect(_with_query(params["redirect_uri"], answer))


def _decide(sandbox: Sandbox, params: dict[str, str], user_id: str, decision: str) -> Response:
    if decision != "approve":
        return _deny(params, "access_denied")
    with sandbox.lock:
        if user_id not in sandbox.users:
            return html_response(400, pages.error_page(f"Unknown sandbox user: {user_id}"))
        code = sandbox.auth.new_code(
            AuthorizationCode(
                client_id=params["client_id"],
                user_id=user_id,
                redirect_uri=params["redirect_uri"],
                scope=" ".join(params.get("scope", "").split()),
                challenge=params.get("code_challenge"),
                expires_at=time.time() + sandbox.options["code_ttl"],
            )
        )
    answer = {"code": code}
    if "state" in params:
        answer["state"] = params["state"]
    return redirect(_with_query(params["redirect_uri"], answer))


def authorize_get(sandbox: Sandbox, request: Request) -> Response:
    """The consent page, or an immediate redirect with ``sandbox_user``/``sandbox_decision``."""
    params = {name: values[0] for name, values in request.query.items()}
    error = _check_authorize(sandbox, params)
    if error:
        return error
    if "sandbox_user" in params or "sandbox_decision" in params:
        user_id = params.get("sandbox_user", DEFAULT_USER)
        return _decide(sandbox, params, user_id, params.get("sandbox_decision", "approve"))
    with sandbox.lock:
        users = list(sandbox.users.values())
    scopes = params.get("scope", "").split()
    # The redirect URI was validated above; Approve and Deny redirect to its origin.
    target = urlsplit(params["redirect_uri"])
    return html_response(
        200,
        pages.authorize_page(params, users, DEFAULT_USER, scopes),
        form_target=f"{target.scheme}://{target.netloc}",
    )


def authorize_post(sandbox: Sandbox, request: Request) -> Response:
    """The consent form's answer: Approve or Deny, as the chosen user."""
    params = request.form()
    error = _check_authorize(sandbox, params)
    if error:
        return error
    user_id = params.pop("sandbox_user", DEFAULT_USER)
    decision = params.pop("sandbox_decision", "deny")
    return _decide(sandbox, params, user_id, decision)


def _token_error(error: str, description: str, status: int = 400) -> Response:
    return json_response(status, {"error": error, "error_description": description})


def _client(
    sandbox: Sandbox, request: Request, form: dict[str, str]
) -> tuple[str, bool] | Response:
    """(client_id, authenticated with the secret), or the invalid_client answer."""
    client_id = form.get("client_id")
    secret = form.get("client_secret")
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
            basic_id, _, secret = decoded.partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return _token_error("invalid_client", "Invalid client", 401)
        if client_id is not None and client_id != basic_id:
            return _token_error("invalid_client", "Invalid client", 401)
        client_id = basic_id
    if client_id != sandbox.config.client_id:
        return _token_error("invalid_client", "Invalid client")
    if secret is not None and secret != sandbox.config.client_secret:
        return _token_error("invalid_client", "Invalid client secret")
    return client_id, secret is not None


def token(sandbox: Sandbox, request: Request) -> Response:
    """POST /api/token: authorization_code and refresh_token grants."""
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return _token_error("invalid_request", "Content-Type must be form-urlencoded")
    form = request.form()
    client = _client(sandbox, request, form)
    if isinstance(client, Response):
        return client
    client_id, has_secret = client
    grant = form.get("grant_type")
    with sandbox.lock:
        if grant == "authorization_code":
            answer = _exchange_code(sandbox, form, client_id, has_secret)
        elif grant == "refresh_token":
            answer = _refresh(sandbox, form, client_id)
        else:
            return _token_error("unsupported_grant_type", f"grant_type: {grant}")
    if isinstance(answer, Response):
        return answer
    return json_response(200, answer, headers)


def _exchange_code(
    sandbox: Sandbox, form: dict[str, str], client_id: str, has_secret: bool
) -> dict[str, object] | Response:
    code = form.get("code")
    if not code:
        return _token_error("invalid_request", "code must be supplied")
    record = sandbox.auth.codes.get(code)
    if record is None or record.used:
        return _token_error("invalid_grant", "Invalid authorization code")
    # Any attempt uses the code up, so a client cannot probe it with different parameters.
    record.used = True
    if time.time() > record.expires_at:
        return _token_error("invalid_grant", "Authorization code expired")
    if record.client_id != client_id:
        return _token_error("invalid_grant", "Invalid authorization code")
    if form.get("redirect_uri") != record.redirect_uri:
        return _token_error("invalid_grant", "Invalid redirect URI")
    verifier = form.get("code_verifier")
    if record.challenge is not None:
        if verifier is None or not VERIFIER.fullmatch(verifier):
            return _token_error("invalid_grant", "code_verifier was incorrect")
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != record.challenge:
            return _token_error("invalid_grant", "code_verifier was incorrect")
    elif not has_secret:
        return _token_error("invalid_client", "Invalid client secret")
    return issue_tokens(sandbox, record.user_id, record.scope)


def _refresh(
    sandbox: Sandbox, form: dict[str, str], client_id: str
) -> dict[str, object] | Response:
    record = sandbox.auth.refresh.get(form.get("refresh_token") or "")
    if record is None or record.client_id != client_id:
        return _token_error("invalid_grant", "Invalid refresh token")
    if record.revoked:
        return _token_error("invalid_grant", "Refresh token revoked")
    if time.time() > record.expires_at:
        return _token_error("invalid_grant", "Refresh token expired")
    ttl = sandbox.options["token_ttl"]
    access = sandbox.auth.new_access(record.user_id, client_id, record.scope, ttl)
    answer: dict[str, object] = {
        "access_token": access.token,
        "token_type": "Bearer",
        "scope": record.scope,
        "expires_in": ttl,
    }
    if sandbox.options["rotate_refresh_tokens"]:
        # The new token keeps the old one's expiry: six months from the original consent.
        remaining = max(0, int(record.expires_at - time.time()))
        fresh = sandbox.auth.new_refresh(record.user_id, client_id, record.scope, remaining)
        record.revoked = True
        answer["refresh_token"] = fresh.token
    return answer


def authenticate(sandbox: Sandbox, request: Request) -> AccessToken | Response:
    """The valid access token of a /v1 request, or Spotify's 401/400 answer."""
    header = request.headers.get("authorization", "")
    if not header:
        return _unauthorized("No token provided")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return api_error(400, "Only valid bearer authentication supported")
    with sandbox.lock:
        access = sandbox.auth.access.get(value.strip())
    if access is None:
        return _unauthorized("Invalid access token")
    if time.time() >= access.expires_at:
        return _unauthorized("The access token expired")
    return access


def _unauthorized(message: str) -> Response:
    response = api_error(401, message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="spotify", error="invalid_token"'
    return response
