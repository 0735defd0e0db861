"""`manage.py tokens_reencrypt` finishes a key rotation: afterwards the old key can be dropped
and every listener's tokens still decrypt, so nobody is logged out."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.core.management import call_command

from genres.crypto import TokenDecryptionError, decrypt_token, encrypt_token
from genres.models import SpotifyAccount

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()
LOST_KEY = Fernet.generate_key().decode()


def listener(name: str, *, refresh: bool = True) -> SpotifyAccount:
    user = get_user_model().objects.create_user(username=name)
    return SpotifyAccount.objects.create(
        user=user,
        spotify_id=name,
        access_token_encrypted=encrypt_token(f"access-{name}"),
        refresh_token_encrypted=encrypt_token(f"refresh-{name}") if refresh else "",
    )


def reencrypt() -> str:
    output = StringIO()
    call_command("tokens_reencrypt", stdout=output)
    return output.getvalue().strip()


def plain_tokens() -> dict[str, tuple[str, str]]:
    return {
        account.spotify_id: (
            decrypt_token(account.access_token_encrypted),
            decrypt_token(account.refresh_token_encrypted)
            if account.refresh_token_encrypted
            else "",
        )
        for account in SpotifyAccount.objects.order_by("spotify_id")
    }


def stored_tokens() -> list[tuple[str, str]]:
    fields = ("access_token_encrypted", "refresh_token_encrypted")
    return list(SpotifyAccount.objects.order_by("pk").values_list(*fields))


@pytest.fixture
def rotated(db: Any, settings: Any) -> Any:
    """Three listeners signed in under the old key, then the new key put first."""
    settings.SWEDIFY_TOKEN_KEYS = [OLD_KEY]
    listener("alice")
    listener("bob")
    listener("carol", refresh=False)
    settings.SWEDIFY_TOKEN_KEYS = [NEW_KEY, OLD_KEY]
    return settings


def test_after_the_command_the_old_key_can_be_dropped_without_logging_anyone_out(
    rotated: Any,
) -> None:
    before = plain_tokens()
    assert reencrypt() == (
        "tokens re-encrypted with the first key: 5; already with the first key: 0; "
        "unreadable with every key (left as they are): 0"
    )
    rotated.SWEDIFY_TOKEN_KEYS = [NEW_KEY]
    assert (
        plain_tokens()
        == before
        == {
            "alice": ("access-alice", "refresh-alice"),
            "bob": ("access-bob", "refresh-bob"),
            "carol": ("access-carol", ""),
        }
    )


def test_without_the_command_dropping_the_old_key_logs_listeners_out(rotated: Any) -> None:
    # The negative control: the rotation really needs the command.
    rotated.SWEDIFY_TOKEN_KEYS = [NEW_KEY]
    with pytest.raises(TokenDecryptionError):
        plain_tokens()


def test_running_it_again_changes_nothing(rotated: Any) -> None:
    reencrypt()
    stored = stored_tokens()
    assert reencrypt() == (
        "tokens re-encrypted with the first key: 0; already with the first key: 5; "
        "unreadable with every key (left as they are): 0"
    )
    assert stored_tokens() == stored


def test_a_token_no_key_can_read_is_counted_and_left_as_it_is(rotated: Any) -> None:
    rotated.SWEDIFY_TOKEN_KEYS = [LOST_KEY]
    lost = listener("dave")
    rotated.SWEDIFY_TOKEN_KEYS = [NEW_KEY, OLD_KEY]
    assert reencrypt().endswith("unreadable with every key (left as they are): 2")
    lost.refresh_from_db()
    rotated.SWEDIFY_TOKEN_KEYS = [LOST_KEY]
    assert decrypt_token(lost.refresh_token_encrypted) == "refresh-dave"


def test_without_configured_keys_it_uses_the_key_derived_from_the_secret(
    db: Any, settings: Any
) -> None:
    settings.SWEDIFY_TOKEN_KEYS = []
    listener("erin")
    assert reencrypt().startswith("tokens re-encrypted with the first key: 0; already")
