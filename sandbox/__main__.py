"""``python -m sandbox``: run the Spotify sandbox on 127.0.0.1 until stopped.

Prints exactly one line, ``Spotify sandbox listening on http://127.0.0.1:<port>``, once the
port is bound, so scripts can wait for it.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from sandbox.config import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SandboxConfig
from sandbox.library import SpecError
from sandbox.server import make_server

READY_LINE = "Spotify sandbox listening on {url}"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="Local stand-in for Spotify's accounts service and Web API (2026 rules).",
    )
    parser.add_argument("--port", type=int, default=8900, help="0 picks a free port")
    parser.add_argument("--seed", default="swedify", help="seed of the catalog and libraries")
    parser.add_argument("--users", help="JSON file with a list of user specs to add")
    parser.add_argument(
        "--no-default-users", action="store_true", help="start without the built-in users"
    )
    parser.add_argument(
        "--rate-limit", type=int, default=0, help="requests per rolling 30 s window; 0 = off"
    )
    parser.add_argument(
        "--rate-window", type=float, default=30.0, help="length of the rolling window, seconds"
    )
    parser.add_argument(
        "--quota", type=int, default=0, help="requests per endpoint group; 0 = unlimited"
    )
    parser.add_argument(
        "--quota-retry-after", type=int, default=36000, help="Retry-After of a quota 429"
    )
    parser.add_argument("--latency-ms", type=int, default=0, help="added to every request")
    parser.add_argument(
        "--error-rate", type=float, default=0.0, help="share of API requests answered 5xx"
    )
    parser.add_argument(
        "--extended-quota", action="store_true", help="behave like an Extended Quota app"
    )
    parser.add_argument(
        "--legacy-shape", action="store_true", help="also send pre-2026 `tracks` keys"
    )
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument(
        "--redirect-uri",
        action="append",
        dest="redirect_uris",
        help="allowed redirect URI (repeatable); default: any http://127.0.0.1:<port>/<path>",
    )
    parser.add_argument("--token-ttl", type=int, default=3600, help="access token lifetime, s")
    parser.add_argument(
        "--rotate-refresh-tokens", action="store_true", help="refresh answers a new refresh token"
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    return SandboxConfig(
        seed=args.seed,
        users=args.users,
        default_users=not args.no_default_users,
        rate_limit=args.rate_limit,
        rate_window=args.rate_window,
        quota=args.quota,
        quota_retry_after=args.quota_retry_after,
        latency_ms=args.latency_ms,
        error_rate=args.error_rate,
        extended_quota=args.extended_quota,
        legacy_shape=args.legacy_shape,
        client_id=args.client_id,
        client_secret=args.client_secret,
        redirect_uris=args.redirect_uris,
        token_ttl=args.token_ttl,
        rotate_refresh_tokens=args.rotate_refresh_tokens,
    )


def _stop(signum: int, frame: FrameType | None) -> None:
    # Leaves serve_forever through the normal exception path, so the socket is closed.
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        server = make_server(config_from_args(args), args.port, verbose=args.verbose)
    except (OSError, ValueError, SpecError) as error:
        print(f"sandbox: cannot start: {error}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _stop)
    print(READY_LINE.format(url=server.url), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
