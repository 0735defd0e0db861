"""Sign-in with Spotify through the sandbox over HTTP, every error key, /session, logout."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client

from genres.crypto import decrypt_token
from genres.models import SpotifyAccount, SpotifyCallBucket
from tests.genres.conftest import authorize, callback_path, sign_in

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


def test_sign_in_redirects_to_spotify_with_pkce_and_a_random_state(client, spotify_at_sandbox):
    first = client.get("/auth/spotify")
    second = client.get("/auth/spotify")

    assert first.status_code == 302
    url = urlsplit(first["Location"])
    assert (
        f"{url.scheme}://{url.netloc}{url.path}" == f"{spotify_at_sandbox.accounts_url}/authorize"
    )
    query = {name: values[0] for name, values in parse_qs(url.query).items()}
    assert query["response_type"] == "code"
    assert query["client_id"] == "swedify-sandbox"
    assert query["redirect_uri"] == "http://127.0.0.1:8000/auth/spotify/callback"
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert {"user-library-read", "playlist-modify-private"} <= set(query["scope"].split())
    other = parse_qs(urlsplit(second["Location"]).query)
    assert other["state"][0] != query["state"]
    assert other["code_challenge"][0] != query["code_challenge"]


def test_a_full_sign_in_creates_a_listener_with_encrypted_tokens(client, spotify_at_sandbox):
    sign_in(client, spotify_at_sandbox, "listener")

    session = client.get("/session").json()
    assert session["authenticated"] is True
    assert session["user"] == {"id": "listener", "displayName": "Sandbox Listener"}
    assert len(session["csrfToken"]) >= 32
    account = SpotifyAccount.objects.get()
    user = account.user
    assert user.username == "spotify:listener"
    assert not user.has_usable_password()
    assert not user.is_staff
    assert account.account_id
    assert account.token_expires_at is not None
    assert SpotifyCallBucket.objects.filter(endpoint="POST /api/token", ok=1).exists()
    assert SpotifyCallBucket.objects.filter(endpoint="GET /me", ok=1).exists()
    refresh = decrypt_token(account.refresh_token_encrypted)
    assert refresh
    assert refresh not in account.refresh_token_encrypted
    assert decrypt_token(account.access_token_encrypted)


def test_signing_in_again_links_the_same_account(client, spotify_at_sandbox):
    sign_in(client, spotify_at_sandbox, "listener")
    SpotifyAccount.objects.update(needs_reauth=True)
    other = Client()

    sign_in(other, spotify_at_sandbox, "listener")

    assert SpotifyAccount.objects.count() == 1
    assert get_user_model().objects.count() == 1
    assert SpotifyAccount.objects.get().needs_reauth is False
    assert other.get("/session").json()["authenticated"] is True


def _callback(client: Any, sandbox: Any, user: str, decision: str) -> str:
    start = client.get("/auth/spotify")
    return callback_path(authorize(sandbox, start["Location"], user, decision))


def test_a_denied_consent_answers_spotify_denied(client, spotify_at_sandbox):
    answer = client.get(_callback(client, spotify_at_sandbox, "listener", "deny"))

    assert answer.status_code == 302
    assert answer["Location"] == "/?error=spotify_denied"
    assert client.get("/session").json() == {"authenticated": False}


@pytest.mark.parametrize(
    "query",
    ["code=abc", "code=abc&state=", "code=abc&state=not-a-state-we-issued"],
)
def test_a_missing_or_unknown_state_answers_invalid_state(client, spotify_at_sandbox, query):
    client.get("/auth/spotify")

    answer = client.get(f"/auth/spotify/callback?{query}")

    assert answer["Location"] == "/?error=invalid_state"


def test_a_reused_state_answers_invalid_state(client, spotify_at_sandbox):
    callback = _callback(client, spotify_at_sandbox, "listener", "approve")
    assert client.get(callback)["Location"] == "/"
    client.post("/auth/logout")

    assert client.get(callback)["Location"] == "/?error=invalid_state"


def test_a_state_from_another_session_answers_invalid_state(client, spotify_at_sandbox):
    callback = _callback(Client(), spotify_at_sandbox, "listener", "approve")

    assert client.get(callback)["Location"] == "/?error=invalid_state"
    assert not SpotifyAccount.objects.exists()


@pytest.mark.parametrize(
    "query", ["", "state=abc", "code=&state=abc", "code=a&code=b&state=abc", "code=a%00b&state=x"]
)
def test_a_missing_code_or_malformed_input_answers_invalid_request(
    client, spotify_at_sandbox, query
):
    answer = client.get(f"/auth/spotify/callback?{query}")

    assert answer.status_code == 302
    assert answer["Location"] == "/?error=invalid_request"


def test_a_code_spotify_refuses_answers_spotify_auth_failed(client, spotify_at_sandbox):
    callback = _callback(client, spotify_at_sandbox, "listener", "approve")
    query = parse_qs(urlsplit(callback).query)

    answer = client.get(f"/auth/spotify/callback?code=forged&state={query['state'][0]}")

    assert answer["Location"] == "/?error=spotify_auth_failed"
    assert not SpotifyAccount.objects.exists()


def test_spotify_being_down_answers_spotify_auth_failed(client, spotify_at_sandbox, settings):
    callback = _callback(client, spotify_at_sandbox, "listener", "approve")
    settings.SPOTIFY_ACCOUNTS_URL = "http://127.0.0.1:9"  # nothing listens there

    assert client.get(callback)["Location"] == "/?error=spotify_auth_failed"


def test_a_user_not_allow_listed_answers_spotify_not_allowlisted(client, spotify_at_sandbox):
    callback = _callback(client, spotify_at_sandbox, "outsider", "approve")

    assert client.get(callback)["Location"] == "/?error=spotify_not_allowlisted"
    assert not SpotifyAccount.objects.exists()


def test_logout_ends_the_session_on_the_server(client, spotify_at_sandbox):
    sign_in(client, spotify_at_sandbox, "listener")
    cookie = client.cookies["sessionid"].value
    assert Session.objects.filter(session_key=cookie).exists()
    token = client.get("/session").json()["csrfToken"]

    answer = client.post("/auth/logout", HTTP_X_CSRFTOKEN=token)

    assert answer.status_code == 302
    assert answer["Location"] == "/"
    assert not Session.objects.filter(session_key=cookie).exists()
    # Replaying the old cookie gets nothing either.
    replay = Client()
    replay.cookies["sessionid"] = cookie
    assert replay.get("/session").json() == {"authenticated": False}
    assert replay.get("/api/genres").status_code == 401


def test_logout_without_a_session_is_still_a_redirect(client, db):
    assert client.post("/auth/logout")["Location"] == "/"
    assert client.post("/auth/logout")["Location"] == "/"


def test_logout_needs_post_and_a_csrf_token(db):
    strict = Client(enforce_csrf_checks=True)

    assert strict.get("/auth/logout").status_code == 405
    assert strict.post("/auth/logout").status_code == 403


def test_session_says_anonymous_for_staff_without_a_spotify_account(client, db):
    staff = get_user_model().objects.create_user("operator", is_staff=True)
    client.force_login(staff)

    assert client.get("/session").json() == {"authenticated": False}


def test_a_stray_callback_writes_no_session(client, db):
    answer = client.get("/auth/spotify/callback?code=a&state=b")

    assert answer["Location"] == "/?error=invalid_state"
    assert not Session.objects.exists()


def test_two_sign_ins_started_in_one_session_both_stay_valid(client, spotify_at_sandbox):
    first = _callback(client, spotify_at_sandbox, "listener", "approve")
    second = _callback(client, spotify_at_sandbox, "listener", "approve")

    assert client.get(first)["Location"] == "/"
    assert client.get(second)["Location"] == "/"
    assert client.get(first)["Location"] == "/?error=invalid_state"
