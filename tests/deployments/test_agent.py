"""Deploy agents: real Celery workers on 127.0.0.2 and 127.0.0.3, each with a data folder of
its own, on the test's broker (files in CI-less runs, Redis when REDIS_URL is set). They
download the release over HTTP from this process (a live server) with a token, build or
reuse a virtualenv, and start, probe and stop slots that listen on their own address."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest
from celery._state import _set_task_join_will_block, task_join_will_block
from django.conf import settings
from django.db import connection
from django.test import override_settings

from deployments import slots
from deployments.agent import (
    AgentError,
    AgentNotAnswering,
    RemoteHost,
    agent_slot_start,
    agent_slot_status,
    agents_call,
    release_offer,
    release_token,
)
from swedify.celery import app as celery_app
from tests.deployments.bluegreen import SLOT_ENV, free_port, new_environment

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[2]
HOSTS = ("127.0.0.2", "127.0.0.3")
NOBODY = "127.0.0.9"  # no agent ever consumes deploy.127.0.0.9
AGENT_START_TIMEOUT = 60.0
# Far above what a seeded start takes here (seconds), far below a hang.
START_DEADLINE = 120.0
STATUS_TIMEOUT = 15.0


class Agent:
    def __init__(self, host: str, data_dir: Path, process: subprocess.Popen, log: Path) -> None:
        self.host, self.data_dir, self.process, self.log = host, data_dir, process, log

    @contextlib.contextmanager
    def on_host(self) -> Iterator[None]:
        """This process looking at the agent's data folder (its pid files, releases)."""
        with override_settings(DATA_DIR=self.data_dir):
            yield


def database_url() -> str:
    """The test database (pytest-django has switched to it): the slots' health probes it."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def agent_env(host: str, data_dir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "SWEDIFY_AGENT_HOST": host,
        "SWEDIFY_DATA_DIR": str(data_dir),
        # The agents share this process's broker; with the filesystem broker that is a folder.
        "SWEDIFY_BROKER_DIR": str(settings.BROKER_DIR),
        "SWEDIFY_AGENT_VENV_SEED": "true",
        "DEBUG": "false",
        "SWEDIFY_SANDBOX": "true",
        **SLOT_ENV,
    }
    for name in ("SWEDIFY_VERSION", "PYTHONPATH"):
        env.pop(name, None)
    return env


def agent_spawn(host: str, data_dir: Path) -> Agent:
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "agent.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "swedify", "worker",
                "-Q", f"deploy.{host}", "-n", f"agent-{host}@%h",
                "--concurrency", "1", "--without-mingle", "--without-gossip", "--loglevel", "INFO",
            ],
            cwd=REPO, env=agent_env(host, data_dir), stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return Agent(host, data_dir, process, log)


def agent_wait_ready(agent: Agent) -> None:
    deadline = time.monotonic() + AGENT_START_TIMEOUT
    while "ready." not in agent.log.read_text():
        assert agent.process.poll() is None, agent.log.read_text()
        assert time.monotonic() < deadline, f"agent not ready:\n{agent.log.read_text()}"
        time.sleep(0.2)


def agent_shutdown(agent: Agent) -> None:
    if agent.process.poll() is None:
        agent.process.send_signal(signal.SIGTERM)
    try:
        agent.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        agent.process.kill()
        agent.process.wait(timeout=10)
    # Slots outlive their agent by design: stop whatever a failed test left running.
    with agent.on_host():
        for pid_file in (agent.data_dir / "slots").glob("*.pid"):
            environment, _, slot = pid_file.stem.rpartition("-")
            with contextlib.suppress(slots.SlotError):
                slots.slot_stop(environment=environment, slot=slot)


def queue_purge(host: str) -> None:
    """Commands left for a host nobody serves would otherwise stay in the shared broker."""
    with celery_app.connection_for_write() as connection, contextlib.suppress(Exception):
        connection.default_channel.queue_purge(f"deploy.{host}")


@pytest.fixture(scope="module")
def agents(
    tmp_path_factory: pytest.TempPathFactory, django_db_setup: None
) -> Iterator[dict[str, Agent]]:
    """Agents on 127.0.0.2 and 127.0.0.3 (after the test database exists: their slots use it)."""
    started: dict[str, Agent] = {}
    try:
        for host in HOSTS:
            started[host] = agent_spawn(host, tmp_path_factory.mktemp(f"agent-{host}"))
        for agent in started.values():
            agent_wait_ready(agent)
        yield started
    finally:
        for agent in started.values():
            agent_shutdown(agent)
        queue_purge(NOBODY)


def git_sha(revision: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", revision], capture_output=True, text=True, check=True
    ).stdout.strip()


@functools.cache
def head_sha() -> str:
    """Other commits land while the suite runs: every test deploys the commit that was HEAD
    when the first one asked. Asked lazily, never at import: the pipeline's quality gate
    collects this module inside a release export, which is no git repository."""
    return git_sha("HEAD")


def release_offer_token_of_another_commit() -> str:
    """A real token, but for HEAD: a token opens its own commit only."""
    return release_token(git_sha=head_sha())


def served_version(host: str, port: int) -> str | None:
    return slots.health_version(port=port, host=host, timeout=3)


def test_an_agent_starts_a_release_in_a_slot_on_its_own_address_and_stops_it(
    agents: dict[str, Agent], live_server: Any
) -> None:
    host, environment, port = HOSTS[0], new_environment(), free_port()
    remote = RemoteHost(host, control_url=live_server.url)
    started = remote.slot_start(
        environment=environment,
        slot="blue",
        port=port,
        version="7.0.0",
        git_sha=head_sha(),
        timeout=START_DEADLINE,
    )
    assert started["running"] is True
    assert (started["bind"], started["port"]) == (host, port)
    assert started["git_sha"] == head_sha()
    assert started["downloaded"] is True
    assert served_version(host, port) == "7.0.0"
    # Bound to the host's address only: the same port on another loopback address is closed.
    assert not slots.port_in_use(port, "127.0.0.1")
    # The slot runs from the release's virtualenv under the agent's data folder.
    with agents[host].on_host():
        status = slots.slot_status(environment=environment, slot="blue")
        assert status is not None
    python = Path(os.readlink(f"/proc/{status.pid}/exe"))
    cmdline = Path(f"/proc/{status.pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[0].decode() == str(Path(started["venv"]) / "bin" / "python"), python
    assert Path(started["venv"]).parent == agents[host].data_dir / "venvs"
    assert Path(os.readlink(f"/proc/{status.pid}/cwd")) == (
        agents[host].data_dir / "releases" / head_sha()
    )

    assert remote.slot_status(environment=environment, slot="blue") == {
        "ok": True,
        "running": True,
        "port": port,
        "version": "7.0.0",
        "pid": status.pid,
        "bind": host,
        "git_sha": head_sha(),
    }
    health = remote.slot_health(environment=environment, slot="blue")
    assert health["healthy"] is True
    assert health["http_status"] == 200
    assert health["body"]["version"] == "7.0.0"
    assert set(health["body"]["components"]) >= {"database", "cache", "broker"}
    assert health["url"] == f"http://{host}:{port}/health?detailed=true"

    stopped = remote.slot_stop(environment=environment, slot="blue", drain_seconds=0.2)
    assert stopped["was_running"] is True
    assert served_version(host, port) is None
    assert remote.slot_status(environment=environment, slot="blue")["running"] is False
    # Stopping again is a no-op answer; probing a stopped slot says so.
    assert remote.slot_stop(environment=environment, slot="blue")["was_running"] is False
    after = remote.slot_health(environment=environment, slot="blue")
    assert after["healthy"] is False
    assert "not running" in after["error"]


def test_starting_what_already_runs_is_a_no_op_and_another_slot_reuses_release_and_venv(
    agents: dict[str, Agent], live_server: Any
) -> None:
    host, environment = HOSTS[1], new_environment()
    blue_port, green_port = free_port(), free_port()
    remote = RemoteHost(host, control_url=live_server.url)
    start = {"environment": environment, "version": "8.0.0", "git_sha": head_sha()}
    try:
        first = remote.slot_start(slot="blue", port=blue_port, timeout=START_DEADLINE, **start)
        again = remote.slot_start(slot="blue", port=blue_port, timeout=START_DEADLINE, **start)
        assert (first["already_running"], again["already_running"]) == (False, True)
        assert again["pid"] == first["pid"]

        green = remote.slot_start(slot="green", port=green_port, timeout=START_DEADLINE, **start)
        assert green["downloaded"] is False
        assert green["venv_reused"] is True
        assert green["venv"] == first["venv"]
        assert served_version(host, green_port) == "8.0.0"

        # Another version in a running slot is refused, and the slot keeps serving.
        with pytest.raises(AgentError, match=r"already runs 8\.0\.0"):
            remote.slot_start(
                slot="blue", port=blue_port, timeout=START_DEADLINE, **{**start, "version": "9"}
            )
        assert served_version(host, blue_port) == "8.0.0"
    finally:
        for slot in ("blue", "green"):
            remote.slot_stop(environment=environment, slot=slot)


def test_one_call_reaches_every_host_at_once_and_a_silent_host_is_an_answer(
    agents: dict[str, Agent], live_server: Any
) -> None:
    environment, port = new_environment(), free_port()
    try:
        answers = agents_call(
            hosts=list(HOSTS),
            action="slot_start",
            timeout=START_DEADLINE,
            control_url=live_server.url,
            environment=environment,
            slot="green",
            port=port,
            version="10.0.0",
            git_sha=head_sha(),
        )
        assert list(answers) == list(HOSTS)
        for host in HOSTS:
            assert answers[host].ok, answers[host].error
            assert served_version(host, port) == "10.0.0"

        # A silent host costs the one deadline (not START_DEADLINE: it would only wait it out),
        # and the hosts that answer are answers all the same.
        statuses = agents_call(
            hosts=[*HOSTS, NOBODY],
            action="slot_status",
            timeout=STATUS_TIMEOUT,
            environment=environment,
            slot="green",
        )
        assert list(statuses) == [*HOSTS, NOBODY]
        assert {host: statuses[host].result["version"] for host in HOSTS} == {
            host: "10.0.0" for host in HOSTS
        }
        silent = statuses[NOBODY]
        assert (silent.ok, silent.answered) == (False, False)
        assert f"host {NOBODY} did not answer slot_status" in silent.error
    finally:
        stops = agents_call(
            hosts=list(HOSTS), action="slot_stop", environment=environment, slot="green"
        )
    assert all(answer.ok for answer in stops.values()), stops
    assert all(served_version(host, port) is None for host in HOSTS)


def test_a_host_without_a_running_agent_does_not_answer_within_the_deadline(
    agents: dict[str, Agent],
) -> None:
    started = time.monotonic()
    with pytest.raises(AgentNotAnswering, match=rf"host {NOBODY} did not answer slot_status"):
        RemoteHost(NOBODY).slot_status(environment="staging", slot="blue", timeout=1.5)
    assert time.monotonic() - started < 30
    # Negative control: a running agent answers the same question within the same deadline.
    answer = RemoteHost(HOSTS[0]).slot_status(environment="staging", slot="blue", timeout=15)
    assert answer == {"ok": True, "running": False}


def test_an_agent_refuses_a_bad_token_and_an_archive_with_another_checksum(
    agents: dict[str, Agent], live_server: Any
) -> None:
    host, environment = HOSTS[0], new_environment()
    # A commit no test starts, so that the agent has to download it.
    never_started = git_sha(f"{head_sha()}~1")
    offer = release_offer(git_sha=never_started, control_url=live_server.url)

    def start_with(bad_offer: Any) -> dict[str, Any]:
        result = agent_slot_start.apply_async(
            kwargs={
                "host": host, "environment": environment, "slot": "blue",
                "port": free_port(), "version": "1", "offer": asdict(bad_offer),
            },
            queue=f"deploy.{host}",
        )  # fmt: skip
        return result.get(timeout=START_DEADLINE)

    refused = start_with(replace(offer, token=release_offer_token_of_another_commit()))
    assert refused["ok"] is False
    assert "answered 403" in refused["error"]
    tampered = start_with(replace(offer, sha256="f" * 64))
    assert tampered["ok"] is False
    assert f"not the offered {'f' * 64}" in tampered["error"]
    with agents[host].on_host():
        assert slots.slot_status(environment=environment, slot="blue") is None
    assert not (agents[host].data_dir / "releases" / never_started).exists()


def test_an_agent_refuses_a_command_meant_for_another_host(agents: dict[str, Agent]) -> None:
    result = agent_slot_status.apply_async(
        kwargs={"host": HOSTS[1], "environment": "staging", "slot": "blue"},
        queue=f"deploy.{HOSTS[0]}",
    )
    answer = result.get(timeout=STATUS_TIMEOUT)
    assert answer == {
        "ok": False,
        "error": f"this agent is {HOSTS[0]}, not {HOSTS[1]}; check the worker's -Q option",
    }


def test_the_pipeline_may_wait_for_agents_from_inside_a_celery_task(
    agents: dict[str, Agent],
) -> None:
    previous = task_join_will_block()
    _set_task_join_will_block(True)  # what a prefork worker's child sets
    try:
        answer = RemoteHost(HOSTS[1]).slot_status(
            environment="staging", slot="green", timeout=STATUS_TIMEOUT
        )
    finally:
        _set_task_join_will_block(previous)
    assert answer["running"] is False


def test_an_agent_that_comes_back_after_the_deadline_drops_the_command_it_missed(
    agents: dict[str, Agent], live_server: Any, tmp_path: Path
) -> None:
    late_host, environment, port = "127.0.0.4", new_environment(), free_port()
    missed = RemoteHost(late_host, control_url=live_server.url).call(
        "slot_start", environment=environment, slot="blue", port=port, version="11.0.0",
        git_sha=head_sha(), timeout=1.0,
    )  # fmt: skip
    assert missed.answered is False
    time.sleep(1.0)  # the command's deadline has passed before the agent starts
    late = agent_spawn(late_host, tmp_path / "late-agent")
    try:
        agent_wait_ready(late)
        # Commands are taken in order: once this one is answered, the missed one was seen
        # and dropped as expired (or, on RabbitMQ, already dropped by the broker).
        status = RemoteHost(late_host).slot_status(
            environment=environment, slot="blue", timeout=STATUS_TIMEOUT
        )
        assert status == {"ok": True, "running": False}
        assert served_version(late_host, port) is None
        assert not (late.data_dir / "releases").exists()
        if settings.CELERY_BROKER_URL.startswith(("filesystem://", "redis")):
            assert "Discarding revoked task: deployments.agent.slot_start" in late.log.read_text()
    finally:
        agent_shutdown(late)
        queue_purge(late_host)
