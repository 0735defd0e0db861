"""A foreground deploy refuses in its first second, in one line naming what to set, when the
release's slots (started with this process's environment) would refuse to boot or no HAProxy
could be started here; before, the run paused after the quality gate with a traceback."""

from __future__ import annotations

import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from deployments.models import PipelineRun
from deployments.services import release_create
from tests.deployments.fakes import FakeInfrastructure

pytestmark = pytest.mark.django_db


def test_a_deploy_with_the_development_secret_refuses_at_once_naming_secret_key(
    infra: FakeInfrastructure, settings
) -> None:
    settings.DEBUG = False
    settings.SECRET_KEY = settings.DEVELOPMENT_SECRET_KEY
    release_create(git_sha="a" * 40)

    started = time.monotonic()
    with pytest.raises(CommandError) as refused:
        call_command("deploy", "r1")

    message = str(refused.value)
    assert "SECRET_KEY is the development key while DEBUG is off; set SECRET_KEY" in message
    assert "\n" not in message
    # Nothing ran: no run, no gate command, no slot.
    assert not PipelineRun.objects.exists()
    assert (infra.commands, infra.starts) == ([], [])
    # Far from the 44 s it took to fail before (the quality gate first).
    assert time.monotonic() - started < 10


def test_a_deploy_without_spotify_credentials_or_the_sandbox_names_both(
    infra: FakeInfrastructure, settings
) -> None:
    settings.SECRET_KEY = "a-real-secret-for-the-release-slots"
    settings.SPOTIFY_SANDBOX = False
    settings.SPOTIFY_CLIENT_ID = ""
    release_create(git_sha="a" * 40)

    with pytest.raises(CommandError, match=r"set SPOTIFY_CLIENT_ID .* or SWEDIFY_SANDBOX=true"):
        call_command("deploy", "r1")
    assert not PipelineRun.objects.exists()


def test_a_deploy_to_a_proxy_on_this_machine_without_haproxy_says_how_to_install_it(
    infra: FakeInfrastructure, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.SECRET_KEY = "a-real-secret-for-the-release-slots"
    monkeypatch.setattr(infra, "haproxy_missing", lambda: "HAProxy is not installed: apt-get …")
    release_create(git_sha="a" * 40)

    with pytest.raises(CommandError, match="proxy on this machine, but HAProxy is not installed"):
        call_command("deploy", "r1")
    assert not PipelineRun.objects.exists()


def test_a_deploy_with_a_real_secret_runs_the_pipeline(
    infra: FakeInfrastructure, settings, capsys: pytest.CaptureFixture[str]
) -> None:
    settings.SECRET_KEY = "a-real-secret-for-the-release-slots"
    release_create(git_sha="a" * 40)

    call_command("deploy", "r1")

    assert PipelineRun.objects.get().status == PipelineRun.Status.SUCCEEDED
    assert "| Traffic cutover | success |" in capsys.readouterr().out


def test_a_queued_deploy_leaves_the_check_to_the_worker_that_starts_the_slots(
    infra: FakeInfrastructure, settings
) -> None:
    settings.SECRET_KEY = settings.DEVELOPMENT_SECRET_KEY
    release_create(git_sha="a" * 40)

    call_command("deploy", "r1", "--queue")

    assert PipelineRun.objects.get().status == PipelineRun.Status.QUEUED
