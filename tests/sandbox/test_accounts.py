"""The accounts service: /authorize and /api/token behave like Spotify's."""

from __future__ import annotations

import base64
from urllib.parse import urlencode

from sandbox.testing import RunningSandbox
from tests.sandbox.conftest import REDIRECT_URI, authorize_query, http, pkce_pair


def _authorize(sandbox: RunningSandbox, **extra: str) -> dict[str, str]:
    """Approve as `listener` through the shortcut; the callback's query."""
    extra.setdefault("sandbox_user", "listener")
    answer = http("GET", f"{sandbox.url}/authorize?{urlencode(authorize_query(**extra))}")
    assert answer.status == 302, answer.text
    return answer.location_query


def _exchange(sandbox: RunningSandbox, form: dict[str, str], basic: bool = False):
    headers = {}
    if basic:
        pair = f"{sandbox.client_id}:{sandbox.client_secret}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    return http("POST", f"{sandbox.url}/api/token", form=form, headers=headers)


def _code_form(code: str, verifier: str, **changes: str) -> dict[str, str]:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": "swedify-sandbox",
        "code_verifier": verifier,
    }
    form.update(changes)
    return form


def test_the_authorize_page_renders_approve_and_deny_with_a_user_selector(
    sandbox: RunningSandbox,
) -> None:
    answer = http("GET", f"{sandbox.url}/authorize?{urlencode(authorize_query())}")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    page = answer.text
    assert "value=approve>Approve</button>" in page
    assert "value=deny>Deny</button>" in page
    assert '<option value="listener" selected>' in page
    assert '<option value="bigfan">' in page
    assert 'method=post action="/authorize"' in page


def test_the_consent_form_approves_as_the_chosen_user(sandbox: RunningSandbox) -> None:
    verifier, challenge = pkce_pair()
    form = authorize_query(
        code_challenge_method="S256",
        code_challenge=challenge,
        sandbox_user="bigfan",
        sandbox_decision="approve",
    )
    answer = http("POST", f"{sandbox.url}/authorize", form=form)
    assert answer.status == 302
    assert answer.headers["Location"].startswith(REDIRECT_URI + "?")
    code = answer.location_query["code"]
    assert answer.location_query["state"] == "state-123"
    tokens = _exchange(sandbox, _code_form(code, verifier)).json()
    me = http("GET", f"{sandbox.api_url}/me", token=tokens["access_token"]).json()
    assert me["id"] == "bigfan"


def test_the_consent_form_deny_redirects_with_access_denied(sandbox: RunningSandbox) -> None:
    form = authorize_query(sandbox_user="listener", sandbox_decision="deny")
    answer = http("POST", f"{sandbox.url}/authorize", form=form)
    assert answer.status == 302
    assert answer.location_query == {"error": "access_denied", "state": "state-123"}


def test_the_shortcut_approves_or_denies_at_once(sandbox: RunningSandbox) -> None:
    approved = _authorize(sandbox, sandbox_user="newbie", sandbox_decision="approve")
    assert set(approved) == {"code", "state"}
    denied = _authorize(sandbox, sandbox_user="newbie", sandbox_decision="deny")
    assert denied == {"error": "access_denied", "state": "state-123"}


def test_it_refuses_an_unknown_client_with_a_400_page(sandbox: RunningSandbox) -> None:
    query = authorize_query(client_id="someone-else")
    answer = http("GET", f"{sandbox.url}/authorize?{urlencode(query)}")
    assert answer.status == 400
    assert "INVALID_CLIENT: Invalid client" in answer.text


def test_it_refuses_localhost_as_an_insecure_redirect_uri(sandbox: RunningSandbox) -> None:
    query = authorize_query(redirect_uri="http://localhost:8000/auth/spotify/callback")
    answer = http("GET", f"{sandbox.url}/authorize?{urlencode(query)}")
    assert answer.status == 400
    assert "INVALID_CLIENT: Insecure redirect URI" in answer.text


def test_it_refuses_a_redirect_uri_that_is_not_loopback_or_configured(
    sandbox: RunningSandbox,
) -> None:
    query = authorize_query(redirect_uri="https://evil.example/callback")
    assert http("GET", f"{sandbox.url}/authorize?{urlencode(query)}").status == 400
    sandbox.configure(redirect_uris=["https://swedify.example/auth/spotify/callback"])
    configured = authorize_query(redirect_uri="https://swedify.example/auth/spotify/callback")
    configured["sandbox_user"] = "listener"
    assert http("GET", f"{sandbox.url}/authorize?{urlencode(configured)}").status == 302
    # With a configured list the match is exact: the loopback default no longer applies.
    assert http("GET", f"{sandbox.url}/authorize?{urlencode(authorize_query())}").status == 400


def test_it_redirects_an_unsupported_response_type(sandbox: RunningSandbox) -> None:
    assert _authorize(sandbox, response_type="token") == {
        "error": "unsupported_response_type",
        "state": "state-123",
    }


def test_it_refuses_a_malformed_code_challenge(sandbox: RunningSandbox) -> None:
    short = _authorize(sandbox, code_challenge_method="S256", code_challenge="abc")
    assert short["error"] == "invalid_request"
    _, challenge = pkce_pair()
    plain = _authorize(sandbox, code_challenge_method="plain", code_challenge=challenge)
    assert plain["error"] == "invalid_request"


def test_it_exchanges_a_code_with_the_pkce_verifier(sandbox: RunningSandbox) -> None:
    verifier, challenge = pkce_pair()
    code = _authorize(sandbox, code_challenge_method="S256", code_challenge=challenge)["code"]
    answer = _exchange(sandbox, _code_form(code, verifier))
    assert answer.status == 200, answer.text
    tokens = answer.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3600
    assert tokens["scope"] == "user-library-read playlist-modify-private"
    assert tokens["refresh_token"]
    assert answer.headers["Cache-Control"] == "no-store"


def test_it_refuses_pkce_verifier_mismatch(sandbox: RunningSandbox) -> None:
    _, challenge = pkce_pair()
    other_verifier, _ = pkce_pair()
    code = _authorize(sandbox, code_challenge_method="S256", code_challenge=challenge)["code"]
    answer = _exchange(sandbox, _code_form(code, other_verifier))
    assert answer.status == 400
    assert answer.json()["error"] == "invalid_grant"


def test_it_refuses_a_missing_verifier_when_a_challenge_was_sent(
    sandbox: RunningSandbox,
) -> None:
    _, challenge = pkce_pair()
    code = _authorize(sandbox, code_challenge_method="S256", code_challenge=challenge)["code"]
    form = _code_form(code, "")
    del form["code_verifier"]
    answer = _exchange(sandbox, form, basic=True)
    assert (answer.status, answer.json()["error"]) == (400, "invalid_grant")


def test_it_refuses_code_reuse(sandbox: RunningSandbox) -> None:
    verifier, challenge = pkce_pair()
    code = _authorize(sandbox, code_challenge_method="S256", code_challenge=challenge)["code"]
    assert _exchange(sandbox, _code_form(code, verifier)).status == 200
    again = _exchange(sandbox, _code_form(code, verifier))
    assert again.status == 400
    assert again.json()["error"] == "invalid_grant"


def test_it_refuses_a_redirect_uri_other_than_the_authorized_one(
    sandbox: RunningSandbox,
) -> None:
    verifier, challenge = pkce_pair()
    code = _authorize(sandbox, code_challenge_method="S256", code_challenge=challenge)["code"]
    form = _code_form(code, verifier, redirect_uri="http://127.0.0.1:8000/other")
    answer = _exchange(sandbox, form)
    assert (answer.status, answer.json()["error"]) == (400, "invalid_grant")


def test_it_refuses_an_expired_code(sandbox: RunningSandbox) -> None:
    sandbox.configure(code_ttl=0)
    verifier, challenge = pkce_pair()
    code = _authorize(sandbox, code_challenge_method="S256", code_challenge=challenge)["code"]
    answer = _exchange(sandbox, _code_form(code, verifier))
    assert (answer.status, answer.json()["error"]) == (400, "invalid_grant")


def test_it_exchanges_a_code_with_basic_client_credentials(sandbox: RunningSandbox) -> None:
    code = _authorize(sandbox)["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    answer = _exchange(sandbox, form, basic=True)
    assert answer.status == 200, answer.text


def test_it_refuses_bad_client_credentials(sandbox: RunningSandbox) -> None:
    code = _authorize(sandbox)["code"]
    wrong = base64.b64encode(b"swedify-sandbox:wrong-secret").decode()
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    answer = http(
        "POST", f"{sandbox.url}/api/token", form=form, headers={"Authorization": f"Basic {wrong}"}
    )
    assert answer.status in (400, 401)
    assert answer.json()["error"] == "invalid_client"
    unknown = {**form, "client_id": "someone-else"}
    assert _exchange(sandbox, unknown).json()["error"] == "invalid_client"


def test_refresh_gives_a_new_access_token_and_omits_the_refresh_token(
    sandbox: RunningSandbox,
) -> None:
    tokens = sandbox.login("listener")
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": "swedify-sandbox",
    }
    answer = _exchange(sandbox, form)
    assert answer.status == 200, answer.text
    fresh = answer.json()
    assert "refresh_token" not in fresh
    assert fresh["access_token"] != tokens["access_token"]
    assert fresh["expires_in"] == 3600
    assert http("GET", f"{sandbox.api_url}/me", token=fresh["access_token"]).status == 200
    # The kept refresh token goes on working.
    assert _exchange(sandbox, form).status == 200


def test_refresh_rotates_the_refresh_token_when_switched_on(sandbox: RunningSandbox) -> None:
    sandbox.configure(rotate_refresh_tokens=True)
    old = sandbox.login("listener")["refresh_token"]
    form = {"grant_type": "refresh_token", "refresh_token": old, "client_id": "swedify-sandbox"}
    new = _exchange(sandbox, form).json()["refresh_token"]
    assert new != old
    assert _exchange(sandbox, form).json()["error"] == "invalid_grant"
    assert _exchange(sandbox, {**form, "refresh_token": new}).status == 200


def test_a_revoked_refresh_token_answers_invalid_grant(sandbox: RunningSandbox) -> None:
    tokens = sandbox.login("listener")
    assert sandbox.revoke_refresh_tokens("listener") == 1
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": "swedify-sandbox",
    }
    answer = _exchange(sandbox, form)
    assert (answer.status, answer.json()["error"]) == (400, "invalid_grant")


def test_an_expired_access_token_answers_401(sandbox: RunningSandbox) -> None:
    token = sandbox.login("listener")["access_token"]
    assert http("GET", f"{sandbox.api_url}/me", token=token).status == 200
    assert sandbox.expire_tokens("listener") == 1
    answer = http("GET", f"{sandbox.api_url}/me", token=token)
    assert answer.status == 401
    assert answer.json() == {"error": {"status": 401, "message": "The access token expired"}}


def test_tokens_expire_after_the_configured_lifetime(sandbox: RunningSandbox) -> None:
    sandbox.configure(token_ttl=0)
    tokens = sandbox.login("listener")
    assert tokens["expires_in"] == 0
    answer = http("GET", f"{sandbox.api_url}/me", token=tokens["access_token"])
    assert answer.json()["error"]["message"] == "The access token expired"


def test_an_unknown_or_missing_token_answers_401(sandbox: RunningSandbox) -> None:
    unknown = http("GET", f"{sandbox.api_url}/me", token="BQnot-a-token")
    assert unknown.status == 401
    assert unknown.json()["error"]["message"] == "Invalid access token"
    assert http("GET", f"{sandbox.api_url}/me").status == 401
