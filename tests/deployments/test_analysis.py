"""Post-promotion analysis: verdicts from HAProxy's counters, across every proxy."""

from __future__ import annotations

import contextlib
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deployments.analysis import (
    Thresholds,
    TrafficSample,
    analysis_watch,
    traffic_sample,
    traffic_verdict,
)
from deployments.proxy import ProxyError
from tests.deployments.bluegreen import new_environment, running_proxy

STAT_HEADER = "# pxname,svname,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,rtime,"


class FakeStats:
    """A proxy's runtime API answering ``show stat`` from counters the test moves."""

    backend = "app"

    def __init__(self, ok: int = 0, errors: int = 0, rtime: int = 5) -> None:
        self.ok, self.errors, self.rtime, self.down = ok, errors, rtime, False

    def command(self, line: str) -> str:
        assert line == "show stat"
        if self.down:
            raise ProxyError("cannot reach HAProxy's admin socket")
        return (
            f"{STAT_HEADER}\n"
            f"app,blue-1,0,{self.ok},0,0,{self.errors},{self.rtime},\n"
            f"app,BACKEND,0,{self.ok},0,0,{self.errors},{self.rtime},\n"
            f"stats,BACKEND,0,99,0,0,99,1,\n"
        )


def test_a_sample_reads_the_backend_row_of_show_stat() -> None:
    assert traffic_sample(FakeStats(ok=90, errors=10, rtime=42)) == TrafficSample(100, 10, 42.0)


def test_the_5xx_share_since_the_window_opened_decides_across_all_proxies() -> None:
    before = [TrafficSample(1000, 500, 5), TrafficSample(0, 0, 5)]  # old traffic never counts
    now = [TrafficSample(1050, 520, 5), TrafficSample(50, 11, 5)]

    verdict = traffic_verdict(before=before, now=now, thresholds=Thresholds(), elapsed_seconds=60)

    assert not verdict.healthy
    assert verdict.reason == "automatic: 5xx 31 % > 5 % over 60 s"
    assert (verdict.responses, verdict.errors_5xx) == (100, 31)


def test_a_healthy_release_is_not_judged_by_traffic_it_did_not_serve() -> None:
    """Negative control: the same old 5xx counters with clean new traffic pass."""
    before = [TrafficSample(1000, 500, 5)]
    now = [TrafficSample(1100, 501, 5)]

    verdict = traffic_verdict(before=before, now=now, thresholds=Thresholds(), elapsed_seconds=60)

    assert verdict.healthy, verdict.reason


def test_too_few_responses_say_nothing_about_a_share_but_slowness_still_counts() -> None:
    few = traffic_verdict(
        before=[TrafficSample(0, 0, 5)],
        now=[TrafficSample(3, 3, 5)],
        thresholds=Thresholds(),
        elapsed_seconds=5,
    )
    slow = traffic_verdict(
        before=[TrafficSample(0, 0, 5)],
        now=[TrafficSample(3, 0, 2500)],
        thresholds=Thresholds(),
        elapsed_seconds=5,
    )

    assert few.healthy
    assert not slow.healthy
    assert slow.reason == "automatic: response time 2500 ms > 1000 ms over 5 s"


def test_a_restarted_proxy_counts_from_its_restart() -> None:
    verdict = traffic_verdict(
        before=[TrafficSample(5000, 0, 5)],
        now=[TrafficSample(40, 30, 5)],
        thresholds=Thresholds(),
        elapsed_seconds=30,
    )

    assert (verdict.responses, verdict.errors_5xx, verdict.healthy) == (40, 30, False)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_watch_stops_at_the_first_bad_sample_and_names_it() -> None:
    clock, proxy = Clock(), FakeStats(ok=100)

    def traffic(seconds: float) -> None:
        clock.sleep(seconds)
        proxy.ok += 10
        proxy.errors += 10 if clock.now >= 30 else 0

    verdict = analysis_watch(
        proxies=[proxy], thresholds=Thresholds(window_seconds=300), sleep=traffic, clock=clock
    )

    assert not verdict.healthy
    assert verdict.reason.startswith("automatic: 5xx ")
    assert verdict.elapsed_seconds == 30


def test_a_good_release_passes_the_whole_window_even_with_a_proxy_down() -> None:
    clock, serving, dead = Clock(), FakeStats(ok=10), FakeStats(ok=7, errors=7)

    def traffic(seconds: float) -> None:
        clock.sleep(seconds)
        serving.ok += 20
        dead.down = True

    verdict = analysis_watch(
        proxies=[serving, dead],
        thresholds=Thresholds(window_seconds=60),
        sleep=traffic,
        clock=clock,
    )

    assert verdict.healthy, verdict.reason
    assert verdict.elapsed_seconds == 60
    assert verdict.responses == 240


def test_a_failing_health_probe_ends_the_window_and_an_operator_can_end_it_early() -> None:
    clock = Clock()
    probe_failure = analysis_watch(
        proxies=[FakeStats()],
        thresholds=Thresholds(),
        health_problem=lambda: "health: database error" if clock.now >= 10 else None,
        sleep=clock.sleep,
        clock=clock,
    )
    second = Clock()
    promoted = analysis_watch(
        proxies=[FakeStats()],
        thresholds=Thresholds(),
        should_stop=lambda: second.now >= 25,
        sleep=second.sleep,
        clock=second,
    )

    assert probe_failure.reason == "automatic: health: database error after 10 s"
    assert promoted.healthy
    assert promoted.elapsed_seconds == 25


# --- Real HAProxy ----------------------------------------------------------------------------


class _Backend(BaseHTTPRequestHandler):
    failing_share = 0.0
    served = 0

    def do_GET(self) -> None:
        cls = type(self)
        status = 200
        if self.path != "/health":
            cls.served += 1
            if cls.failing_share and cls.served % round(1 / cls.failing_share) == 0:
                status = 500
        body = b'{"status": "ok"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def backend(failing_share: float) -> Iterator[int]:
    handler = type("Handler", (_Backend,), {"failing_share": failing_share, "served": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def drive(listen_port: int, requests: int) -> None:
    for _ in range(requests):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{listen_port}/", timeout=5).read()
        except urllib.error.HTTPError as answer:
            answer.read()


@pytest.mark.integration
@pytest.mark.parametrize(("failing_share", "healthy"), [(0.5, False), (0.0, True)])
def test_real_haproxy_counters_judge_the_release_that_serves(failing_share, healthy) -> None:
    """A release answering 500 to half the requests is caught; the same harness passes one
    that answers every request (the negative control)."""
    with (
        backend(0.0) as old_port,
        backend(failing_share) as new_port,
        running_proxy(
            environment=new_environment(), blue_port=old_port, green_port=new_port, live_slot="blue"
        ) as (proxy, listen_port),
    ):
        drive(listen_port, 40)  # the old release's traffic, before the cutover
        proxy.switch_to("green")
        before = [traffic_sample(proxy)]
        drive(listen_port, 60)

        verdict = traffic_verdict(
            before=before,
            now=[traffic_sample(proxy)],
            thresholds=Thresholds(),
            elapsed_seconds=1,
        )

    assert verdict.healthy is healthy, verdict.reason
    assert verdict.responses == 60
    assert verdict.errors_5xx == (30 if failing_share else 0)
