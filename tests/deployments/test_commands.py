from __future__ import annotations

import subprocess

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from deployments.models import Environment, Release

pytestmark = pytest.mark.django_db


@pytest.fixture
def repository(tmp_path, settings) -> str:
    """A git repository of one commit standing in for the project's own, so the commands work
    (and are tested) where the project is no checkout: a release export, a source tarball."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=tmp_path, capture_output=True, text=True, check=True
        ).stdout.strip()

    git("init", "-q")
    (tmp_path / "README.md").write_text("release\n")
    git("add", "README.md")
    git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "first")
    settings.BASE_DIR = tmp_path
    return git("rev-parse", "HEAD")


def test_release_create_records_the_head_commit(capsys, repository: str) -> None:
    head = repository
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


def test_release_create_refuses_an_unknown_commit(repository: str) -> None:
    with pytest.raises(CommandError, match="git rev-parse"):
        call_command("release_create", "--sha", "no-such-branch")


def test_environment_configure_sets_ports_and_refuses_equal_ones() -> None:
    call_command("environment_configure", "staging", "--blue-port", "7001", "--green-port", "7002")
    staging = Environment.objects.get(name="staging")
    assert (staging.blue_port, staging.green_port, staging.live_slot) == (7001, 7002, "")
    with pytest.raises(CommandError, match="different ports"):
        call_command("environment_configure", "staging", "--blue-port", "1", "--green-port", "1")


def test_deploy_without_a_production_environment_is_a_clear_error(settings) -> None:
    # A real secret: the deploy's own check of the slots' environment passes first.
    settings.SECRET_KEY = "a-real-secret-for-the-release-slots"
    Release.objects.create(version=1, git_sha="a" * 40)
    with pytest.raises(CommandError, match="no production environment"):
        call_command("deploy", "1")
