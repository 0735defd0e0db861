"""The accounts service's records: authorization codes, access and refresh tokens.

Plain data, so the sandbox's state (which holds them) and the accounts endpoints (which issue
and check them) both depend on this module and not on each other.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass


@dataclass
class AuthorizationCode:
    client_id: str
    user_id: str
    redirect_uri: str
    scope: str
    challenge: str | None
    expires_at: float
    used: bool = False


@dataclass
class AccessToken:
    token: str
    user_id: str
    client_id: str
    scopes: frozenset[str]
    expires_at: float


@dataclass
class RefreshToken:
    token: str
    user_id: str
    client_id: str
    scope: str
    expires_at: float
    revoked: bool = False


class AuthStore:
    """Codes and tokens; the caller holds the sandbox lock."""

    def __init__(self) -> None:
        self.codes: dict[str, AuthorizationCode] = {}
        self.access: dict[str, AccessToken] = {}
        self.refresh: dict[str, RefreshToken] = {}

    def new_code(self, record: AuthorizationCode) -> str:
        code = "AQ" + secrets.token_urlsafe(96)
        self.codes[code] = record
        return code

    def new_access(self, user_id: str, client_id: str, scope: str, ttl: int) -> AccessToken:
        token = AccessToken(
            token="BQ" + secrets.token_urlsafe(120),
            user_id=user_id,
            client_id=client_id,
            scopes=frozenset(scope.split()),
            expires_at=time.time() + ttl,
        )
        self.access[token.token] = token
        return token

    def new_refresh(self, user_id: str, client_id: str, scope: str, ttl: int) -> RefreshToken:
        token = RefreshToken(
            token="AQ" + secrets.token_urlsafe(96),
            user_id=user_id,
            client_id=client_id,
            scope=scope,
            expires_at=time.time() + ttl,
        )
        self.refresh[token.token] = token
        return token

    def expire_access(self, user_id: str) -> int:
        expired = 0
        now = time.time()
        for token in self.access.values():
            if token.user_id == user_id and token.expires_at > now:
                token.expires_at = now - 1
                expired += 1
        return expired

    def revoke_refresh(self, user_id: str) -> int:
        revoked = 0
        for token in self.refresh.values():
            if token.user_id == user_id and not token.revoked:
                token.revoked = True
                revoked += 1
        return revoked
