"""Zero downtime, proven: bounded keep-alive load through a real HAProxy while the live slot
switches blue → green and rolls back green → blue, every response tagged with the release
that served it; and a negative control showing the same harness catches a restart in place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from benchmarks.load import LoadGenerator
from deployments.proxy import Proxy
from deployments.slots import SlotProcess, slot_start, slot_stop
from tests.deployments.bluegreen import (
    SLOT_ENV,
    head_release,
    new_environment,
    require_haproxy,
    running_proxy,
    running_slot,
)

pytestmark = pytest.mark.integration

OLD, NEW = "1.0.0", "1.0.1"
LOAD_THREADS = 4
# Bounds, not expectations: the restart in place below may take many seconds on a loaded box.
LOAD_MAX_SECONDS = 40.0
LOAD_MAX_REQUESTS = 30_000
# Responses each phase must see from the expected release before the test moves on.
PHASE_RESPONSES = 100


@dataclass
class Stack:
    environment: str
    proxy: Proxy
    url: str
    blue: SlotProcess
    green: SlotProcess


@pytest.fixture
def stack() -> Iterator[Stack]:
    """Blue serves 1.0.0 (live), green serves 1.0.1 (idle), HAProxy in front."""
    require_haproxy()
    environment, source = new_environment(), head_release()
    with contextlib.ExitStack() as exits:
        blue = exits.enter_context(
            running_slot(environment=environment, slot="blue", version=OLD, source_dir=source)
        )
        green = exits.enter_context(
            running_slot(environment=environment, slot="green", version=NEW, source_dir=source)
        )
        proxy, listen_port = exits.enter_context(
            running_proxy(environment=environment, blue_port=blue.port, green_port=green.port)
        )
        yield Stack(environment, proxy, f"http://127.0.0.1:{listen_port}", blue, green)


def load(url: str) -> LoadGenerator:
    return LoadGenerator(
        url, threads=LOAD_THREADS, max_seconds=LOAD_MAX_SECONDS, max_requests=LOAD_MAX_REQUESTS
    )


def test_a_switch_and_a_rollback_under_load_lose_no_request(stack: Stack) -> None:
    with load(stack.url) as generator:
        assert generator.wait_for(OLD, responses=PHASE_RESPONSES)
        stack.proxy.switch_to("green")
        assert generator.wait_for(NEW, responses=PHASE_RESPONSES)
        stack.proxy.switch_to("blue")  # the rollback: back to the warm old slot
        assert generator.wait_for(OLD, responses=PHASE_RESPONSES)
    result = generator.result

    assert result.non_2xx == 0, result.summary()
    assert result.transport_errors == 0, result.summary()
    assert result.versions[OLD] >= 2 * PHASE_RESPONSES, result.summary()
    assert result.versions[NEW] >= PHASE_RESPONSES, result.summary()
    # Every keep-alive connection survived both switches and followed them (for the instant
    # between "new ready" and "old drain" both serve, so a connection may alternate there).
    assert result.connections_opened == LOAD_THREADS, result.summary()
    for runs in result.version_runs:
        assert runs[0] == OLD, result.version_runs
        assert NEW in runs, result.version_runs
        assert runs[-1] == OLD, result.version_runs
    assert stack.proxy.routed_slot() == "blue"


def test_stopping_the_drained_old_slot_after_a_switch_loses_no_request(stack: Stack) -> None:
    """The pipeline's cleanup: once traffic moved, the old slot is stopped under load."""
    with load(stack.url) as generator:
        assert generator.wait_for(OLD, responses=PHASE_RESPONSES)
        stack.proxy.switch_to("green")
        assert generator.wait_for(NEW, responses=PHASE_RESPONSES)
        slot_stop(environment=stack.environment, slot="blue", drain_seconds=0.2)
        assert generator.wait_for(NEW, responses=PHASE_RESPONSES)
    result = generator.result

    assert result.failed == 0, result.summary()
    assert result.connections_opened == LOAD_THREADS, result.summary()
    assert stack.proxy.routed_slot() == "green"


def test_the_same_harness_catches_a_restart_of_the_live_slot_in_place(stack: Stack) -> None:
    """Negative control: the naive deploy (stop the serving process, start the new release on
    its port) behind the same proxy and load must show failed requests, or a pass above would
    prove nothing."""
    with load(stack.url) as generator:
        assert generator.wait_for(OLD, responses=PHASE_RESPONSES)
        slot_stop(environment=stack.environment, slot="blue")
        slot_start(
            environment=stack.environment,
            slot="blue",
            port=stack.blue.port,
            version=NEW,
            source_dir=head_release(),
            env=SLOT_ENV,
        )
        assert generator.wait_for(NEW, responses=PHASE_RESPONSES, timeout=30)
    result = generator.result

    assert result.failed > 0, result.summary()
    assert result.versions[OLD] > 0, result.summary()
    assert result.versions[NEW] > 0, result.summary()
