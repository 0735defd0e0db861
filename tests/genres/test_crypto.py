from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from genres.crypto import TokenDecryptionError, decrypt_token, encrypt_token, reencrypt_token

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()


def test_a_token_survives_a_round_trip_with_the_key_derived_from_secret_key(settings) -> None:
    settings.SWEDIFY_TOKEN_KEYS = []
    encrypted = encrypt_token("refresh-token-ÅÄÖ")
    assert "refresh-token" not in encrypted
    assert decrypt_token(encrypted) == "refresh-token-ÅÄÖ"


def test_encrypting_twice_gives_different_ciphertexts(settings) -> None:
    settings.SWEDIFY_TOKEN_KEYS = [NEW_KEY]
    assert encrypt_token("same") != encrypt_token("same")


def test_the_old_key_still_decrypts_after_a_rotation_and_the_new_one_encrypts(settings) -> None:
    settings.SWEDIFY_TOKEN_KEYS = [OLD_KEY]
    stored = encrypt_token("old-secret")

    settings.SWEDIFY_TOKEN_KEYS = [NEW_KEY, OLD_KEY]
    assert decrypt_token(stored) == "old-secret"
    fresh = encrypt_token("new-secret")
    assert Fernet(NEW_KEY.encode()).decrypt(fresh.encode()) == b"new-secret"
    rotated = reencrypt_token(stored)

    settings.SWEDIFY_TOKEN_KEYS = [NEW_KEY]
    assert decrypt_token(rotated) == "old-secret"
    with pytest.raises(TokenDecryptionError):
        decrypt_token(stored)


def test_a_comma_separated_string_of_keys_is_accepted(settings) -> None:
    settings.SWEDIFY_TOKEN_KEYS = f"{NEW_KEY}, {OLD_KEY}"
    assert decrypt_token(encrypt_token("x")) == "x"


def test_a_wrong_key_fails_with_a_clear_error(settings) -> None:
    settings.SWEDIFY_TOKEN_KEYS = [OLD_KEY]
    stored = encrypt_token("secret")
    settings.SWEDIFY_TOKEN_KEYS = [NEW_KEY]
    with pytest.raises(TokenDecryptionError, match="cannot be decrypted"):
        decrypt_token(stored)


def test_a_changed_secret_key_cannot_read_tokens_of_the_old_one(settings) -> None:
    settings.SWEDIFY_TOKEN_KEYS = []
    settings.SECRET_KEY = "first-secret"
    stored = encrypt_token("secret")
    settings.SECRET_KEY = "second-secret"
    with pytest.raises(TokenDecryptionError):
        decrypt_token(stored)


def test_garbage_is_a_decryption_error_not_a_crash(settings) -> None:
    settings.SWEDIFY_TOKEN_KEYS = [NEW_KEY]
    for garbage in ("", "not-a-token", "ÅÄÖ"):
        with pytest.raises(TokenDecryptionError):
            decrypt_token(garbage)


def test_a_malformed_configured_key_is_a_configuration_error_without_the_key(settings) -> None:
    settings.SWEDIFY_TOKEN_KEYS = ["too-short-key"]
    with pytest.raises(ImproperlyConfigured, match="entry 1") as caught:
        encrypt_token("x")
    assert "too-short-key" not in str(caught.value)
