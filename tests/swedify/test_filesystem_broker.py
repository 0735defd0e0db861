"""The embedded broker never hands a consumer a half-written message.

A slow write (the envelope's serialisation made slow) keeps a message file pending while the
consumer polls every 10 ms: kombu's own transport hands out the empty file, ours does not.
"""

from __future__ import annotations

import importlib
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Exchange, Queue

MESSAGES = 5
WRITE_SECONDS = 0.2


def broker(transport: str, folder: Path) -> Connection:
    return Connection(
        "filesystem://",
        transport=transport,
        transport_options={
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": str(folder / "control"),
            "polling_interval": 0.01,
        },
    )


def race(transport: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list, list]:
    """Publish while consuming; returns (message numbers received, consumer errors)."""
    (folder / "control").mkdir()
    module = importlib.import_module(transport.partition(":")[0])
    real_dumps = module.dumps

    def slow_dumps(value: Any) -> str:
        time.sleep(WRITE_SECONDS)
        return real_dumps(value)

    queue = Queue("race", Exchange("race", type="direct"), routing_key="race")
    received: list[int] = []
    errors: list[BaseException] = []

    def produce() -> None:
        with broker(transport, folder) as connection:
            producer = connection.Producer(serializer="json")
            for number in range(MESSAGES):
                producer.publish(
                    {"n": number}, exchange=queue.exchange, routing_key="race", declare=[queue]
                )

    with broker(transport, folder) as connection:
        queue(connection.default_channel).declare()
        monkeypatch.setattr(module, "dumps", slow_dumps)
        producing = threading.Thread(target=produce)
        producing.start()
        simple = connection.SimpleQueue(queue)
        while len(received) < MESSAGES:
            try:
                message = simple.get(timeout=MESSAGES * WRITE_SECONDS * 3)
            except Exception as error:  # noqa: BLE001 - the caller asserts on it
                errors.append(error)
                break
            received.append(message.payload["n"])
            message.ack()
        producing.join(timeout=30)
        simple.close()
    return received, errors


def test_a_consumer_racing_a_slow_producer_reads_every_message_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    received, errors = race("swedify.filesystem_broker:Transport", tmp_path, monkeypatch)
    assert errors == []
    assert sorted(received) == list(range(MESSAGES))


def test_the_same_race_breaks_kombus_own_transport(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The negative control: without it a pass above would prove nothing."""
    received, errors = race("kombu.transport.filesystem:Transport", tmp_path, monkeypatch)
    # Either the consumer dies decoding an empty file or the message it took is lost.
    assert errors, f"kombu's transport delivered {received} without an error"
    assert sorted(received) != list(range(MESSAGES))


def test_filesystem_broker_urls_use_the_atomic_transport(tmp_path: Path) -> None:
    from swedify.celery import app

    with app.connection_for_write(f"filesystem://{tmp_path}") as connection:
        assert type(connection.transport).__module__ == "swedify.filesystem_broker"
    with app.connection_for_write("memory://") as connection:
        assert type(connection.transport).__module__ == "kombu.transport.memory"
