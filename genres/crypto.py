"""Encryption of Spotify tokens at rest.

Keys come from ``SWEDIFY_TOKEN_KEYS`` (a comma list of Fernet keys): the first encrypts, all of
them decrypt, so a key is rotated by putting the new one first and dropping the old one once
every stored token has been re-encrypted. Without that setting one key is derived from
``SECRET_KEY``, so a development setup needs nothing, but rotating ``SECRET_KEY`` then makes
stored tokens unreadable (listeners simply sign in again).

Settings are read at call time so tests (and a rotation) take effect without a restart.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# Domain separation: a key derived for tokens is useless for anything else made from SECRET_KEY.
DERIVATION_INFO = b"swedify token encryption v1"


class TokenDecryptionError(Exception):
    """No configured key can decrypt the token (wrong key, rotated away, or corrupted)."""


def derive_key(secret: str) -> bytes:
    """A Fernet key (urlsafe base64 of 32 bytes) derived from ``secret`` with HKDF-SHA256."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=DERIVATION_INFO).derive(
        secret.encode("utf-8")
    )
    return base64.urlsafe_b64encode(raw)


def _configured_keys() -> list[str]:
    keys = getattr(settings, "SWEDIFY_TOKEN_KEYS", None) or []
    if isinstance(keys, str):
        keys = keys.split(",")
    return [key.strip() for key in keys if key and key.strip()]


def _fernet() -> MultiFernet:
    keys = _configured_keys()
    if not keys:
        return MultiFernet([Fernet(derive_key(settings.SECRET_KEY))])
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError):
            # Never echo the key itself: it is a secret.
            raise ImproperlyConfigured(
                f"SWEDIFY_TOKEN_KEYS entry {position} is not a Fernet key "
                "(32 url-safe base64-encoded bytes)"
            ) from None
    return MultiFernet(fernets)


def encrypt_token(plain: str) -> str:
    """Encrypt with the first key; the result is ASCII text safe for a TextField."""
    return _fernet().encrypt(plain.encode("utf-8")).decode("ascii")


def decrypt_token(token: str) -> str:
    """Decrypt with any configured key; raises TokenDecryptionError when none can."""
    try:
        return _fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError) as error:
        raise TokenDecryptionError(
            "the token cannot be decrypted with any key in SWEDIFY_TOKEN_KEYS "
            "(or the key derived from SECRET_KEY)"
        ) from error


def reencrypt_token(token: str) -> str:
    """The token re-encrypted with the current first key (for finishing a key rotation)."""
    try:
        return _fernet().rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError) as error:
        raise TokenDecryptionError("the token cannot be decrypted with any key") from error
