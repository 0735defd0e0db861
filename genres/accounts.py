"""Linking a Spotify profile to a Django user: the listener's account row and its tokens."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from genres.crypto import encrypt_token
from genres.models import SpotifyAccount
from genres.spotify import TokenSet


def account_link(*, profile: Mapping[str, Any], tokens: TokenSet) -> SpotifyAccount:
    """Link (or re-link) a Spotify profile to a Django user and store its tokens.

    Links by ``account_id`` when Spotify sends one (stable), else by ``id``. A new listener gets
    a user ``spotify:<id>`` with an unusable password that is never staff.
    """
    spotify_id = str(profile.get("id") or "")
    if not spotify_id:
        raise ValueError("the Spotify profile has no id")
    account_id = profile.get("account_id") or None
    display_name = str(profile.get("display_name") or spotify_id)[:256]
    values = {
        "display_name": display_name,
        "access_token_encrypted": encrypt_token(tokens.access_token),
        "refresh_token_encrypted": encrypt_token(tokens.refresh_token)
        if tokens.refresh_token
        else "",
        "token_expires_at": tokens.expires_at,
        "scopes": tokens.scope or "",
        "needs_reauth": False,
    }
    User = get_user_model()
    for attempt in range(2):
        try:
            with transaction.atomic():
                account = None
                if account_id:
                    account = (
                        SpotifyAccount.objects.select_for_update()
                        .filter(account_id=account_id)
                        .first()
                    )
                if account is None:
                    account = (
                        SpotifyAccount.objects.select_for_update()
                        .filter(spotify_id=spotify_id)
                        .first()
                    )
                if account is None:
                    user, created = User.objects.get_or_create(
                        username=f"spotify:{spotify_id}"[:150],
                        defaults={"is_staff": False, "is_superuser": False},
                    )
                    if created:
                        user.set_unusable_password()
                        user.save(update_fields=["password"])
                    account = SpotifyAccount(user=user)
                if not values["refresh_token_encrypted"] and account.refresh_token_encrypted:
                    values["refresh_token_encrypted"] = account.refresh_token_encrypted
                account.spotify_id = spotify_id
                account.account_id = account_id or account.account_id
                for name, value in values.items():
                    setattr(account, name, value)
                account.save()
                return account
        except IntegrityError:
            # Race: two callbacks of one new listener both created the account; the second
            # attempt finds the winner's row and updates it.
            if attempt:
                raise
    raise AssertionError("unreachable")
