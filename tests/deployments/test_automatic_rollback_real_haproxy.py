"""The automatic rollback end to end: the real pipeline, two real HAProxy processes and
clients sending requests through both, with tiny HTTP servers as the slots (the release under
test answers 500 to half the requests). The analysis switches both proxies back within seconds;
the same run with a clean release is not rolled back (the negative control)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from deployments.adapters import Infrastructure, SlotInfo, use_infrastructure
from deployments.models import Environment, HostRef, PipelineRun, Rollback
from deployments.pipeline import pipeline_run_create, pipeline_run_execute
from deployments.proxy import Proxy, proxy_stop
from deployments.services import environment_configure, environment_proxy_add, release_create
from tests.deployments.bluegreen import free_port, require_haproxy

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

# A short window: a bad release is caught at the first look with enough responses.
PIPELINE = {
    "quality": {"enabled": False},
    "security": {"enabled": False},
    "production_health": {"delay_seconds": 0.2},
    "analysis": {"params": {"window_seconds": 4, "interval_seconds": 0.5, "min_responses": 20}},
    "cleanup": {"params": {"drain_seconds": 0, "rollback_window_seconds": 0}},
}


class _Slot(BaseHTTPRequestHandler):
    version = ""
    failing = False
    served = 0
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        cls = type(self)
        status = 200
        if not self.path.startswith("/health"):
            cls.served += 1
            if cls.failing and cls.served % 2 == 0:
                status = 500
        body = json.dumps({"status": "ok", "version": cls.version, "components": {}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # HAProxy's health checks close connections early; nothing to report


class TinySlots(Infrastructure):
    """Slots as in-process HTTP servers on the slot's port; proxies and probes are real."""

    def __init__(self, failing_versions: set[str]) -> None:
        super().__init__()
        self.failing_versions = failing_versions
        self.servers: dict[tuple[str, str], tuple[ThreadingHTTPServer, str]] = {}

    def release_source(self, *, git_sha: str) -> Path:
        return Path("/nonexistent")

    def slot_start(self, *, environment: str, slot: str, port: int, version: str,
                   source_dir: Path | None = None, git_sha: str = "",
                   host: HostRef | None = None) -> SlotInfo:  # fmt: skip
        handler = type(
            "Slot", (_Slot,), {"version": version, "failing": version in self.failing_versions}
        )
        server = _QuietServer(("127.0.0.1", port), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.servers[(environment, slot)] = (server, version)
        return SlotInfo(port=port, version=version, pid=None)

    def slot_stop(self, *, environment: str, slot: str, drain_seconds: float = 0.0,
                  host: HostRef | None = None) -> None:  # fmt: skip
        found = self.servers.pop((environment, slot), None)
        if found:
            found[0].shutdown()
            found[0].server_close()

    def slot_status(self, *, environment: str, slot: str,
                    host: HostRef | None = None) -> SlotInfo | None:  # fmt: skip
        found = self.servers.get((environment, slot))
        if found is None:
            return None
        return SlotInfo(port=found[0].server_address[1], version=found[1], pid=None)

    def stop_all(self) -> None:
        for key in list(self.servers):
            self.slot_stop(environment=key[0], slot=key[1])


class Clients:
    """Requests through every proxy, one after another, until stopped (bounded in time)."""

    def __init__(self, ports: list[int], limit_seconds: float = 60) -> None:
        self.ports, self.limit = ports, limit_seconds
        self.stopped = threading.Event()
        self.answers: list[tuple[float, int]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self.stopped.is_set() and time.monotonic() < deadline:
            for port in self.ports:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                        status = r.status
                except urllib.error.HTTPError as error:
                    status = error.code
                except OSError:
                    status = 0
                self.answers.append((time.monotonic(), status))
            time.sleep(0.01)

    def __enter__(self) -> Clients:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)


@pytest.fixture
def production(settings) -> Iterator[tuple[TinySlots, list[int], list[Proxy]]]:
    require_haproxy()
    settings.SWEDIFY_PIPELINE_OVERRIDES = PIPELINE
    environment = environment_configure(
        name="production", blue_port=free_port(), green_port=free_port()
    )
    tag = uuid.uuid4().hex[:8]
    names, ports, proxies = [f"lb{tag}a", f"lb{tag}b"], [free_port(), free_port()], []
    for name, port in zip(names, ports, strict=True):
        row = environment_proxy_add(
            environment=environment, name=name, address="127.0.0.1", listen_port=port
        )
        proxies.append(Proxy(admin_socket=row.admin_socket))
    infrastructure = TinySlots(failing_versions={"r2"})
    try:
        with use_infrastructure(infrastructure):
            yield infrastructure, ports, proxies
    finally:
        for name in names:
            with contextlib.suppress(Exception):
                proxy_stop(environment=name, graceful=False)
        infrastructure.stop_all()


def deploy(sha: str) -> PipelineRun:
    release = release_create(git_sha=sha, actor_name="t")
    return pipeline_run_execute(
        run_id=pipeline_run_create(release=release, actor_name="t", queue=False).pk
    )


def served_version(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as response:
        return json.loads(response.read())["version"]


def test_a_release_answering_500_to_half_the_requests_is_switched_back_within_seconds(
    production,
) -> None:
    _, ports, proxies = production
    assert deploy("a" * 40).status == "succeeded"  # r1, clean
    with Clients(ports) as clients:
        run = deploy("b" * 40)  # r2 answers 500 to every second request
        switched_back = time.monotonic()
        time.sleep(1.5)

    assert run.status == PipelineRun.Status.FAILED, run.error
    rollback = Rollback.objects.get()
    assert (rollback.trigger, rollback.mode, rollback.status) == (
        "automatic",
        "switch_back",
        "succeeded",
    )
    assert rollback.reason.startswith("automatic: 5xx "), rollback.reason
    assert "% > 5 % over " in rollback.reason
    assert [proxy.routed_slot() for proxy in proxies] == ["blue", "blue"]
    assert [served_version(port) for port in ports] == ["r1", "r1"]
    production_row = Environment.objects.get(name="production")
    assert production_row.live_release.label == "r1"
    # From the cutover to both proxies back on r1: within the window, far under a minute.
    cutover_at = run.stages.get(key="cutover").finished_at
    assert (rollback.finished_at - cutover_at).total_seconds() < 30
    # Requests sent once the run had switched back were all answered by the old release.
    after = [status for at, status in clients.answers if at > switched_back + 0.3]
    assert len(after) >= 4
    assert set(after) == {200}
    # ... and the bad release did answer 500s while it served (the verdict had a cause).
    assert 500 in {status for at, status in clients.answers if at < switched_back}


def test_a_clean_release_through_the_same_harness_is_not_rolled_back(production) -> None:
    infrastructure, ports, proxies = production
    infrastructure.failing_versions.clear()
    assert deploy("a" * 40).status == "succeeded"
    with Clients(ports) as clients:
        run = deploy("b" * 40)

    assert run.status == PipelineRun.Status.SUCCEEDED, run.error
    assert not Rollback.objects.exists()
    analysis = run.stages.get(key="analysis")
    assert analysis.summary.startswith("healthy: 0 of "), analysis.summary
    assert [proxy.routed_slot() for proxy in proxies] == ["green", "green"]
    assert [served_version(port) for port in ports] == ["r2", "r2"]
    assert [status for _, status in clients.answers if status != 200] == []
    assert len(clients.answers) >= 20
