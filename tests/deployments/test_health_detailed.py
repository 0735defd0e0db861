"""/health?detailed=true against real sockets: faults are injected by pointing settings at an
unused port (refused), a port that accepts but never answers (hung) and a port whose accept
queue is full (blackholed: the connect itself never completes)."""

from __future__ import annotations

import copy
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connections
from django.test import Client

pytestmark = pytest.mark.django_db

REDIS_CACHE = {
    "BACKEND": "django_redis.cache.RedisCache",
    "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient", "IGNORE_EXCEPTIONS": True},
}


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def hung_port() -> Iterator[int]:
    """Accepts connections (the kernel does) and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield server.getsockname()[1]
    server.close()


@pytest.fixture
def blackholed_port() -> Iterator[int]:
    """A full accept queue: further SYNs are dropped, so a connect hangs like a dead host."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.05)
    yield port
    for filler in fillers:
        filler.close()
    server.close()


class _SpotifyLike(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(401 if self.path.startswith("/v1") else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def spotify_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SpotifyLike)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()


@pytest.fixture
def healthy(settings, spotify_url: str, tmp_path) -> None:
    """Every component reachable: local-memory cache, a filesystem broker, Spotify up."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    (tmp_path / "queue").mkdir()
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(tmp_path / "queue")}
    settings.SPOTIFY_API_URL = spotify_url


def detailed(client: Client) -> tuple[int, dict, float]:
    started = time.perf_counter()
    response = client.get("/health?detailed=true")
    return response.status_code, response.json(), time.perf_counter() - started


def test_all_components_up_answers_ok(client: Client, healthy: None, settings) -> None:
    settings.SWEDIFY_VERSION = "r7"
    status, body, _ = detailed(client)

    assert status == 200
    assert body["status"] == "ok"
    assert body["version"] == "r7"
    assert set(body["components"]) == {"database", "cache", "broker", "spotify"}
    for component in body["components"].values():
        assert component["status"] == "ok"
        assert isinstance(component["latency_ms"], float)
        assert "error" not in component
    assert body["timestamp"].endswith("Z")


def test_the_basic_form_is_unchanged(client: Client, settings) -> None:
    settings.SWEDIFY_VERSION = "9.9.9"
    assert client.get("/health").json() == {"status": "ok", "version": "9.9.9"}
    assert client.get("/health?detailed=false").json() == {"status": "ok", "version": "9.9.9"}


def test_a_bad_detailed_value_is_a_clear_400(client: Client) -> None:
    response = client.get("/health?detailed=maybe")
    assert response.status_code == 400
    assert response.json() == {"error": "detailed must be true or false"}


def test_redis_down_is_degraded_and_fast(client: Client, healthy: None, settings) -> None:
    settings.CACHES = {
        "default": {**REDIS_CACHE, "LOCATION": f"redis://127.0.0.1:{unused_port()}/0"}
    }
    status, body, seconds = detailed(client)

    assert status == 200
    assert body["status"] == "degraded"
    assert body["components"]["cache"]["status"] == "error"
    assert "Redis" in body["components"]["cache"]["error"]
    assert body["components"]["database"]["status"] == "ok"
    assert seconds < 1.0


def test_a_hung_redis_is_degraded_within_a_second(
    client: Client, healthy: None, settings, hung_port: int
) -> None:
    settings.CACHES = {"default": {**REDIS_CACHE, "LOCATION": f"redis://127.0.0.1:{hung_port}/0"}}
    status, body, seconds = detailed(client)

    assert (status, body["status"]) == (200, "degraded")
    assert body["components"]["cache"]["status"] == "error"
    assert seconds < 1.0


def test_a_blackholed_broker_is_degraded_within_a_second(
    client: Client, healthy: None, settings, blackholed_port: int
) -> None:
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{blackholed_port}/0"
    status, body, seconds = detailed(client)

    assert (status, body["status"]) == (200, "degraded")
    assert body["components"]["broker"]["status"] == "error"
    assert body["components"]["cache"]["status"] == "ok"
    assert seconds < 1.0


def test_a_missing_filesystem_broker_folder_is_degraded(
    client: Client, healthy: None, settings, tmp_path
) -> None:
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(tmp_path / "gone")}
    status, body, _ = detailed(client)
    assert (status, body["status"]) == (200, "degraded")
    assert "missing" in body["components"]["broker"]["error"]


def test_spotify_unreachable_is_degraded(client: Client, healthy: None, settings) -> None:
    settings.SPOTIFY_API_URL = f"http://127.0.0.1:{unused_port()}/v1"
    status, body, seconds = detailed(client)

    assert (status, body["status"]) == (200, "degraded")
    assert body["components"]["spotify"] == {
        "status": "error",
        "latency_ms": body["components"]["spotify"]["latency_ms"],
        "error": "cannot reach Spotify: ConnectionError",
    }
    assert seconds < 1.0


def test_spotify_blackholed_is_degraded_within_a_second(
    client: Client, healthy: None, settings, blackholed_port: int
) -> None:
    settings.SPOTIFY_API_URL = f"http://127.0.0.1:{blackholed_port}/v1"
    status, body, seconds = detailed(client)
    assert (status, body["status"]) == (200, "degraded")
    assert seconds < 1.0


@pytest.fixture
def broken_database(settings) -> Iterator[None]:
    """A second database alias that cannot be reached, probed instead of the real one."""
    config = copy.deepcopy(connections.settings["default"])
    if config["ENGINE"].endswith("sqlite3"):
        config["NAME"] = "/nonexistent-folder/swedify.sqlite3"
    else:
        config["HOST"], config["PORT"] = "127.0.0.1", str(unused_port())
    connections.settings["health_broken"] = config
    settings.SWEDIFY_HEALTH_DATABASE_ALIAS = "health_broken"
    yield
    del connections.settings["health_broken"]


def test_database_down_is_503_down(client: Client, healthy: None, broken_database: None) -> None:
    status, body, seconds = detailed(client)

    assert status == 503
    assert body["status"] == "down"
    assert body["components"]["database"]["status"] == "error"
    assert body["components"]["database"]["error"]
    assert body["components"]["cache"]["status"] == "ok"
    assert seconds < 1.0


@pytest.mark.integration
def test_a_real_redis_cache_and_broker_answer_ok(client: Client, healthy: None, settings) -> None:
    url = settings.REDIS_URL or "redis://127.0.0.1:6379/5"
    settings.CACHES = {"default": {**REDIS_CACHE, "LOCATION": url}}
    settings.CELERY_BROKER_URL = url
    status, body, _ = detailed(client)
    # Only the two Redis components are this test's: on a loaded machine the local Spotify
    # stand-in may miss its probe's deadline, which makes the whole answer "degraded".
    assert status == 200, body
    assert body["components"]["cache"]["status"] == "ok", body
    assert body["components"]["broker"]["status"] == "ok", body
