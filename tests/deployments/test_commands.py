from __future__ import annotations

import subprocess

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from deployments.models import Environment, Release

pytestmark = pytest.mark.django_db


def test_release_create_records_the_head_commit(capsys) -> None:
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=settings.BASE_DIR, capture_output=True, text=True
    ).stdout.strip()
    call_command("release_create", "--notes", "first")
    call_command("release_create", "--not-rollback-safe", "drops a column")

    first, second = Release.objects.order_by("version")
    assert (first.label, first.git_sha, first.notes, first.rollback_safe) == (
        "r1",
        head,
        "first",
        True,
    )
    assert (second.rollback_safe, second.rollback_unsafe_reason) == (False, "drops a column")
    assert "r2 = " in capsys.readouterr().out


def test_release_create_refuses_an_unknown_commit() -> None:
    with pytest.raises(CommandError, match="git rev-parse"):
        call_command("release_create", "--sha", "no-such-branch")


def test_environment_configure_sets_ports_and_refuses_equal_ones() -> None:
    call_command("environment_configure", "staging", "--blue-port", "7001", "--green-port", "7002")
    staging = Environment.objects.get(name="staging")
    assert (staging.blue_port, staging.green_port, staging.live_slot) == (7001, 7002, "")
    with pytest.raises(CommandError, match="different ports"):
        call_command("environment_configure", "staging", "--blue-port", "1", "--green-port", "1")


def test_deploy_without_a_production_environment_is_a_clear_error() -> None:
    Release.objects.create(version=1, git_sha="a" * 40)
    with pytest.raises(CommandError, match="no production environment"):
        call_command("deploy", "1")
