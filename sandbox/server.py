"""HTTP plumbing: a threading server bound to 127.0.0.1 that routes to the accounts service,
the Web API (/v1) and the control API (/sandbox/)."""

from __future__ import annotations

import contextlib
import re
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from sandbox import accounts, control, webapi
from sandbox.config import SandboxConfig
from sandbox.faults import LogEntry
from sandbox.state import Sandbox
from sandbox.web import Request, Response, json_response, redirect

HOST = "127.0.0.1"
MAX_BODY = 10 * 1024 * 1024
# Idle keep-alive connections are closed after this, so threads do not pile up.
IDLE_TIMEOUT = 60
_HOST_HEADER = re.compile(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")


def serve_accounts(sandbox: Sandbox, request: Request) -> Response:
    """/authorize and /api/token, with the scripted faults and latency that match them."""
    started = time.monotonic()
    faults = sandbox.faults
    response: Response
    if faults.take(request.method, request.path, ("drop",)):
        response = Response(0, drop=True)
    else:
        if delay := faults.latency():
            time.sleep(delay)
        fault = faults.take(request.method, request.path, ("status",))
        if fault:
            response = webapi.fault_response(fault)
        elif request.path == "/api/token" and request.method == "POST":
            response = accounts.token(sandbox, request)
        elif request.path == "/authorize" and request.method == "GET":
            response = accounts.authorize_get(sandbox, request)
        elif request.path == "/authorize" and request.method == "POST":
            response = accounts.authorize_post(sandbox, request)
        else:
            response = json_response(405, {"error": "method_not_allowed"})
    entry = LogEntry(
        method=request.method,
        path=request.path,
        route=request.path,
        group="accounts",
        status=None if response.drop else response.status,
        user=None,
        time=time.time(),
        duration_ms=(time.monotonic() - started) * 1000,
    )
    sandbox.stats.record(entry, api=False)
    return response


def dispatch(sandbox: Sandbox, request: Request) -> Response:
    path = request.path
    if path == "/v1" or path.startswith("/v1/"):
        return webapi.serve(sandbox, request)
    if path in ("/authorize", "/api/token"):
        return serve_accounts(sandbox, request)
    if path == "/sandbox" or path.startswith("/sandbox/"):
        return control.serve(sandbox, request)
    if path == "/":
        return redirect("/sandbox/")
    return json_response(404, {"error": {"status": 404, "message": "Service not found"}})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a client's connection pool expects
    server_version = "SpotifySandbox/1.0"
    timeout = IDLE_TIMEOUT
    # Headers and body go out in separate writes; with Nagle on, keep-alive clients would
    # wait ~40 ms for a delayed ACK on every request.
    disable_nagle_algorithm = True
    server: SandboxServer

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _handle(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._write(json_response(411, {"error": "send a Content-Length"}))
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            self._write(json_response(400, {"error": "bad Content-Length"}))
            return
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        host = self.headers.get("Host", "")
        if not _HOST_HEADER.fullmatch(host):
            host = f"{HOST}:{self.server.server_address[1]}"
        request = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            base_url=f"http://{host}",
        )
        try:
            response = dispatch(self.server.sandbox, request)
        except Exception:  # noqa: BLE001 - one broken request must not stop the sandbox
            traceback.print_exc(file=sys.stderr)
            response = json_response(500, {"error": {"status": 500, "message": "Sandbox bug"}})
        if response.drop:
            # A scripted "connection dropped": close without sending a single byte.
            self.close_connection = True
            return
        self._write(response)

    def _write(self, response: Response) -> None:
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


class SandboxServer(ThreadingHTTPServer):
    """The sandbox on 127.0.0.1; :meth:`stop` also closes idle keep-alive connections."""

    daemon_threads = True

    def __init__(self, sandbox: Sandbox, port: int = 0, *, verbose: bool = False) -> None:
        self.sandbox = sandbox
        self.verbose = verbose
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__((HOST, port), Handler)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}"

    def process_request(self, request: socket.socket, client_address: object) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def stop(self) -> None:
        """Stop serving (call from another thread than serve_forever) and close connections."""
        self.shutdown()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            # The client may have closed it already.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.server_close()


def make_server(config: SandboxConfig, port: int = 0, *, verbose: bool = False) -> SandboxServer:
    return SandboxServer(Sandbox(config), port, verbose=verbose)
