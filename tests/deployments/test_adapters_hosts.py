"""Infrastructure reaches a slot on this machine through deployments.slots and a slot on any
other host through that host's deploy agent; an agent that does not answer is an error of
that host, never a hang or a local start."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployments import slots
from deployments.adapters import Infrastructure
from deployments.agent import AgentNotAnswering
from deployments.models import HostRef


class Agent:
    def __init__(self, answering: bool = True) -> None:
        self.answering, self.calls = answering, []

    def slot_start(self, **kwargs) -> dict:
        self.calls.append(("start", kwargs))
        if not self.answering:
            raise AgentNotAnswering("host 10.0.0.12 did not answer slot_start within 600 s")
        return {"running": True, "port": kwargs["port"], "version": kwargs["version"]}

    def slot_status(self, **kwargs) -> dict:
        self.calls.append(("status", kwargs))
        return {"ok": True, "running": False}


def test_a_remote_host_is_asked_through_its_agent_and_a_local_one_runs_here(monkeypatch) -> None:
    agent = Agent()
    infrastructure = Infrastructure(slot_env={"SECRET_KEY": "k"})
    monkeypatch.setattr(infrastructure, "remote_host", lambda host: agent)
    local_starts = []
    monkeypatch.setattr(slots, "slot_start", lambda **kw: local_starts.append(kw))
    remote = HostRef("10.0.0.12", 8001, 8002)

    started = infrastructure.slot_start(
        environment="production", slot="green", port=8002, version="r2", git_sha="a" * 40,
        host=remote,
    )  # fmt: skip

    assert (started.port, started.version) == (8002, "r2")
    assert agent.calls[0][1]["git_sha"] == "a" * 40
    assert agent.calls[0][1]["env"] == {"SECRET_KEY": "k"}
    assert local_starts == []
    assert infrastructure.slot_status(environment="production", slot="blue", host=remote) is None
    assert infrastructure.slot_url(port=8002, host=remote) == "http://10.0.0.12:8002"
    assert infrastructure.slot_url(port=8002) == "http://127.0.0.1:8002"


def test_an_agent_that_does_not_answer_fails_that_hosts_start(monkeypatch) -> None:
    infrastructure = Infrastructure()
    monkeypatch.setattr(infrastructure, "remote_host", lambda host: Agent(answering=False))

    with pytest.raises(AgentNotAnswering, match="did not answer"):
        infrastructure.slot_start(
            environment="production", slot="green", port=8002, version="r2",
            source_dir=Path("/nonexistent"), git_sha="a" * 40, host=HostRef("10.0.0.12", 1, 2),
        )  # fmt: skip
