"""Running the sandbox from tests and benchmarks, over real HTTP.

``running_sandbox(**config)`` serves from a background thread of this process;
``spawn_sandbox(args)`` starts ``python -m sandbox`` as a separate process. Both give an object
with ``url``, ``api_url``, ``accounts_url`` and helpers for the control API.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.parse import parse_qs, urlencode, urlsplit
from urllib.request import HTTPRedirectHandler, ProxyHandler, Request, build_opener

from sandbox.accounts import SWEDIFY_SCOPE
from sandbox.config import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SandboxConfig
from sandbox.server import SandboxServer, make_server

STARTUP_TIMEOUT = 10.0
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8000/auth/spotify/callback"
_REPO_ROOT = Path(__file__).resolve().parent.parent


class _NoRedirect(HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# No proxies (a proxy from the environment must never see sandbox traffic) and no redirects
# (the caller wants to see the Location of /authorize).
_opener = build_opener(ProxyHandler({}), _NoRedirect())


class SandboxError(RuntimeError):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"sandbox answered {status}: {body}")
        self.status = status
        self.body = body


class SandboxClient:
    """Helpers for the control API of a sandbox at ``url``."""

    def __init__(self, url: str, client_id: str, client_secret: str) -> None:
        self.url = url
        self.api_url = f"{url}/v1"
        self.accounts_url = url
        self.client_id = client_id
        self.client_secret = client_secret

    def control(self, method: str, path: str, body: Any = None) -> Any:
        """Call ``/sandbox/<path>`` with a JSON body; the decoded JSON answer.

        Raises SandboxError for an error status.
        """
        data = None if body is None else json.dumps(body).encode()
        request = Request(f"{self.url}/sandbox/{path.lstrip('/')}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with _opener.open(request, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except HTTPError as error:
            raise SandboxError(error.code, error.read().decode("utf-8", "replace")) from None

    def create_user(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self.control("POST", "users", spec)["users"][0]

    def add_likes(self, user_id: str, count: int, new_artists: int = 0) -> dict[str, Any]:
        return self.control(
            "POST", f"users/{user_id}/likes", {"count": count, "new_artists": new_artists}
        )

    def add_playlist(self, user_id: str, **spec: Any) -> dict[str, Any]:
        return self.control("POST", f"users/{user_id}/playlists", spec)

    def playlists(self, user_id: str) -> list[dict[str, Any]]:
        return self.control("GET", f"users/{user_id}/playlists")["playlists"]

    def delete_playlist(self, user_id: str, playlist_id: str) -> dict[str, Any]:
        return self.control("DELETE", f"users/{user_id}/playlists/{playlist_id}")

    def truth(self, user_id: str, sources: Sequence[str] = ("liked",)) -> dict[str, Any]:
        return self.control("GET", f"users/{user_id}/truth?sources={','.join(sources)}")

    def issue_token(self, user_id: str, scope: str = SWEDIFY_SCOPE) -> dict[str, Any]:
        return self.control("POST", f"users/{user_id}/tokens", {"scope": scope})

    def expire_tokens(self, user_id: str) -> int:
        return self.control("POST", f"users/{user_id}/tokens/expire")["expired"]

    def revoke_refresh_tokens(self, user_id: str) -> int:
        return self.control("POST", f"users/{user_id}/tokens/revoke")["revoked"]

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        return self.control("POST", "faults", faults)

    def clear_faults(self) -> dict[str, Any]:
        return self.control("DELETE", "faults")

    def configure(self, **options: Any) -> dict[str, Any]:
        return self.control("POST", "config", options)

    def stats(self) -> dict[str, Any]:
        return self.control("GET", "stats")

    def reset_stats(self) -> dict[str, Any]:
        return self.control("POST", "stats/reset")

    def requests(self, limit: int = 100) -> list[dict[str, Any]]:
        return self.control("GET", f"requests?limit={limit}")["requests"]

    def reset(self) -> None:
        self.control("POST", "reset")

    def login(
        self,
        user_id: str = "listener",
        scope: str = SWEDIFY_SCOPE,
        redirect_uri: str = DEFAULT_REDIRECT_URI,
    ) -> dict[str, Any]:
        """The real Authorization Code + PKCE flow over HTTP; the token endpoint's answer."""
        verifier = secrets.token_urlsafe(64)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        query = {
            "client_id": self.client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": scope,
            "state": secrets.token_urlsafe(16),
            "code_challenge_method": "S256",
            "code_challenge": challenge.rstrip(b"=").decode(),
            "sandbox_user": user_id,
            "sandbox_decision": "approve",
        }
        try:
            _opener.open(f"{self.url}/authorize?{urlencode(query)}", timeout=30)
            raise SandboxError(200, "/authorize did not redirect")
        except HTTPError as error:
            if error.code != 302:
                raise SandboxError(error.code, error.read().decode()) from None
            location = error.headers["Location"]
        code = parse_qs(urlsplit(location).query)["code"][0]
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.client_id,
            "code_verifier": verifier,
        }
        request = Request(f"{self.url}/api/token", data=urlencode(form).encode(), method="POST")
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with _opener.open(request, timeout=30) as response:
                return json.loads(response.read())
        except HTTPError as error:
            raise SandboxError(error.code, error.read().decode()) from None


class RunningSandbox(SandboxClient):
    """A sandbox served from a background thread of this process."""

    def __init__(self, server: SandboxServer) -> None:
        config = server.sandbox.config
        super().__init__(server.url, config.client_id, config.client_secret)
        self.server = server

    @property
    def state(self) -> Any:
        """The in-process :class:`sandbox.state.Sandbox`, for the rare check HTTP cannot make."""
        return self.server.sandbox


@contextmanager
def running_sandbox(**config: Any) -> Iterator[RunningSandbox]:
    """Serve a sandbox configured with ``SandboxConfig(**config)`` on a free port."""
    server = make_server(SandboxConfig(**config), 0)
    # A short poll interval makes stop() quick: shutdown waits for the next poll.
    thread = threading.Thread(
        target=server.serve_forever, args=(0.01,), name="spotify-sandbox", daemon=True
    )
    thread.start()
    try:
        yield RunningSandbox(server)
    finally:
        server.stop()
        thread.join(timeout=5)


class SpawnedSandbox(SandboxClient):
    """``python -m sandbox`` in its own process; a context manager that stops it."""

    def __init__(self, process: subprocess.Popen[str], url: str, args: Sequence[str]) -> None:
        client_id = _flag(args, "--client-id", DEFAULT_CLIENT_ID)
        secret = _flag(args, "--client-secret", DEFAULT_CLIENT_SECRET)
        super().__init__(url, client_id, secret)
        self.process = process

    def stop(self, timeout: float = 5.0) -> int:
        """Terminate (SIGTERM) and wait; kill if it does not stop in ``timeout`` seconds."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()
        return self.process.returncode

    def __enter__(self) -> SpawnedSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _flag(args: Sequence[str], name: str, default: str) -> str:
    args = list(args)
    for n, arg in enumerate(args):
        if arg == name and n + 1 < len(args):
            return args[n + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def spawn_sandbox(
    args: Sequence[str] = (), *, timeout: float = STARTUP_TIMEOUT, python: str | None = None
) -> SpawnedSandbox:
    """Start ``python -m sandbox --port 0 <args>`` and wait for its ready line.

    Pass ``--port N`` in ``args`` to choose the port. Raises RuntimeError if it does not
    start within ``timeout`` seconds (the process is stopped then).
    """
    command = [python or sys.executable, "-m", "sandbox"]
    if not any(a == "--port" or a.startswith("--port=") for a in args):
        command += ["--port", "0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [*command, *args],
        cwd=_REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    line = lines[0].strip() if lines else ""
    prefix = "Spotify sandbox listening on "
    if not line.startswith(prefix):
        process.kill()
        process.wait()
        raise RuntimeError(f"sandbox did not start (exit code {process.returncode}): {line!r}")
    return SpawnedSandbox(process, line[len(prefix) :], args)
