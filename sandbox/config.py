"""Start-time configuration of the sandbox, shared by the CLI and :mod:`sandbox.testing`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

DEFAULT_CLIENT_ID = "swedify-sandbox"
DEFAULT_CLIENT_SECRET = "swedify-sandbox-secret"

# Spotify's numbers: access tokens live an hour, codes ten minutes, refresh tokens six months.
ACCESS_TOKEN_TTL = 3600
AUTHORIZATION_CODE_TTL = 600
REFRESH_TOKEN_TTL = 183 * 24 * 3600
# Spotify's rolling window is 30 s; the quota Retry-After reports are "many hours".
RATE_WINDOW_SECONDS = 30.0
QUOTA_RETRY_AFTER = 36000

# Options that POST /sandbox/config may change while the sandbox runs.
RUNTIME_OPTIONS = (
    "extended_quota",
    "legacy_shape",
    "token_ttl",
    "refresh_ttl",
    "code_ttl",
    "rotate_refresh_tokens",
    "redirect_uris",
)


@dataclass
class SandboxConfig:
    """Everything that can be chosen when the sandbox starts.

    ``users`` is a list of user specs (dicts) or the path of a JSON file holding one; they are
    added to the built-in users (same id: replaced) unless ``default_users`` is false.
    ``redirect_uris`` None means Spotify's loopback rule: any ``http://127.0.0.1:<port>/<path>``.
    """

    seed: str = "swedify"
    users: list[dict[str, Any]] | str | None = None
    default_users: bool = True
    rate_limit: int = 0
    rate_window: float = RATE_WINDOW_SECONDS
    quota: int | dict[str, int] = 0
    quota_retry_after: int = QUOTA_RETRY_AFTER
    latency_ms: int = 0
    error_rate: float = 0.0
    extended_quota: bool = False
    legacy_shape: bool = False
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    redirect_uris: list[str] | None = None
    token_ttl: int = ACCESS_TOKEN_TTL
    refresh_ttl: int = REFRESH_TOKEN_TTL
    code_ttl: int = AUTHORIZATION_CODE_TTL
    rotate_refresh_tokens: bool = False

    def __post_init__(self) -> None:
        self.seed = str(self.seed)

    def user_specs(self) -> list[dict[str, Any]]:
        """The extra user specs, read from the file when ``users`` is a path."""
        if self.users is None:
            return []
        if isinstance(self.users, str | Path):
            data = json.loads(Path(self.users).read_text(encoding="utf-8"))
        else:
            data = self.users
        if isinstance(data, dict):
            data = data.get("users", [data])
        if not isinstance(data, list):
            raise ValueError("users must be a list of user specs")
        return [dict(spec) for spec in data]

    def faults(self) -> dict[str, Any]:
        """The fault settings in the shape POST /sandbox/faults accepts."""
        return {
            "rate_limit": self.rate_limit,
            "rate_window": self.rate_window,
            "quota": self.quota,
            "quota_retry_after": self.quota_retry_after,
            "latency_ms": self.latency_ms,
            "error_rate": self.error_rate,
        }

    def runtime(self) -> dict[str, Any]:
        data = asdict(self)
        return {name: data[name] for name in RUNTIME_OPTIONS}

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}
