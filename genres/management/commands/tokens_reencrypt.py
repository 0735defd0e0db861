"""``manage.py tokens_reencrypt``: finish a rotation of SWEDIFY_TOKEN_KEYS.

A rotation puts the new key first (it encrypts from then on; every listed key still
decrypts), runs this command, and only then drops the old key: every stored token has been
re-encrypted with the first key, so no listener is logged out. Safe to run again, and beside
running web processes and workers (each row changes by compare-and-set, so a token a worker
refreshed meanwhile is left as the worker wrote it, already with the first key).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.management.base import BaseCommand

from genres.crypto import TokenDecryptionError, derive_key, reencrypt_token
from genres.models import SpotifyAccount

TOKEN_FIELDS = ("access_token_encrypted", "refresh_token_encrypted")


@dataclass
class ReencryptCounts:
    reencrypted: int = 0
    already_current: int = 0
    unreadable: int = 0


def first_key() -> Fernet:
    """The key that encrypts new tokens (see genres.crypto)."""
    keys = settings.SWEDIFY_TOKEN_KEYS
    if isinstance(keys, str):
        keys = keys.split(",")
    keys = [key.strip() for key in keys or [] if key and key.strip()]
    return Fernet(keys[0]) if keys else Fernet(derive_key(settings.SECRET_KEY))


def tokens_reencrypt(*, batch_size: int = 500) -> ReencryptCounts:
    """Re-encrypt every stored Spotify token that the first key cannot already read."""
    current = first_key()
    counts = ReencryptCounts()
    last_pk = 0
    while True:
        batch = list(
            SpotifyAccount.objects.filter(pk__gt=last_pk)
            .order_by("pk")
            .values("pk", *TOKEN_FIELDS)[:batch_size]
        )
        if not batch:
            return counts
        for row in batch:
            for field in TOKEN_FIELDS:
                token_reencrypt(
                    pk=row["pk"], field=field, stored=row[field], current=current, counts=counts
                )
        last_pk = batch[-1]["pk"]


def token_reencrypt(
    *, pk: int, field: str, stored: str, current: Fernet, counts: ReencryptCounts
) -> None:
    if not stored:
        return
    try:
        current.decrypt(stored.encode("ascii"))
    except (InvalidToken, UnicodeError):
        pass
    else:
        counts.already_current += 1
        return
    try:
        fresh = reencrypt_token(stored)
    except TokenDecryptionError:
        # No configured key reads it (e.g. encrypted under a key already dropped): the
        # listener signs in again; nothing here can recover it.
        counts.unreadable += 1
        return
    changed = SpotifyAccount.objects.filter(pk=pk, **{field: stored}).update(**{field: fresh})
    if changed:
        counts.reencrypted += 1
    else:
        # Rewritten meanwhile (a token refresh, a new sign-in): encrypted with the first key.
        counts.already_current += 1


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored Spotify token with the first key of SWEDIFY_TOKEN_KEYS, so "
        "that a rotated-out key can be dropped without logging listeners out."
    )

    def handle(self, *args: object, **options: object) -> None:
        counts = tokens_reencrypt()
        self.stdout.write(
            f"tokens re-encrypted with the first key: {counts.reencrypted}; "
            f"already with the first key: {counts.already_current}; "
            f"unreadable with every key (left as they are): {counts.unreadable}"
        )
