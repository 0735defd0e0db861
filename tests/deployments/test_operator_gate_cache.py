"""The quality gate reuses a pass for the same files, commands and packages (the same commit
deployed again, or a commit with the same tree), and runs again when any of them changed;
a failure is never reused, and the security scan always runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from deployments import gate
from deployments.models import PipelineRun
from deployments.pipeline import pipeline_run_abort, pipeline_run_create, pipeline_run_execute
from deployments.services import release_create
from tests.deployments.fakes import FakeInfrastructure

pytestmark = pytest.mark.django_db

QUALITY = ["lint-check", "unit-tests", "migrations-check"]


class Repository:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.git("init", "-q")

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=self.folder, capture_output=True, text=True, check=True
        ).stdout.strip()

    def commit(self, text: str, *, allow_empty: bool = False) -> str:
        (self.folder / "app.py").write_text(text)
        self.git("add", "app.py")
        extra = ["--allow-empty"] if allow_empty else []
        self.git("-c", "user.name=t", "-c", "user.email=t@x.invalid", "commit", "-qm", text, *extra)
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def repository(tmp_path: Path, settings) -> Repository:
    settings.BASE_DIR = tmp_path
    return Repository(tmp_path)


def deploy(sha: str) -> PipelineRun:
    run = pipeline_run_create(release=release_create(git_sha=sha), actor_name="t")
    return pipeline_run_execute(run_id=run.pk)


def quality_runs(infra: FakeInfrastructure) -> int:
    return sum(1 for command in infra.commands if command == "unit-tests")


def test_the_same_commit_deployed_again_reuses_its_passed_gate(
    infra: FakeInfrastructure, repository: Repository
) -> None:
    sha = repository.commit("v1")
    first = deploy(sha)
    second = deploy(sha)

    assert (first.status, second.status) == ("succeeded", "succeeded")
    assert quality_runs(infra) == 1
    summary = second.stages.get(key="quality").summary
    assert f"passed in run #{first.pk} for the same files, commands and packages" in summary
    # The security scan asks a database that changes: it runs every time.
    assert infra.commands.count("dependency-audit") == 2


def test_a_commit_with_the_same_tree_reuses_it_and_a_changed_file_runs_it_again(
    infra: FakeInfrastructure, repository: Repository
) -> None:
    deploy(repository.commit("v1"))
    deploy(repository.commit("v1", allow_empty=True))  # a new commit, the same files
    assert quality_runs(infra) == 1

    deploy(repository.commit("v2"))

    assert quality_runs(infra) == 2


def test_other_packages_or_commands_run_the_gate_again(
    infra: FakeInfrastructure, repository: Repository, settings, monkeypatch
) -> None:
    sha = repository.commit("v1")
    deploy(sha)

    monkeypatch.setattr(gate, "gate_packages", lambda python="": ["django==9.9"])
    deploy(sha)
    assert quality_runs(infra) == 2

    settings.SWEDIFY_PIPELINE_OVERRIDES = {
        **settings.SWEDIFY_PIPELINE_OVERRIDES,
        "quality": {"params": {"commands": [*QUALITY, "type-check"]}},
    }
    deploy(sha)
    assert quality_runs(infra) == 3


def test_a_failed_gate_is_never_reused(infra: FakeInfrastructure, repository: Repository) -> None:
    sha = repository.commit("v1")
    infra.failing_commands = {"unit-tests"}
    failed = deploy(sha)
    assert failed.status == "paused"
    pipeline_run_abort(run=failed, reason="fix the test", actor_name="ops")
    infra.failing_commands = set()

    deploy(sha)

    assert quality_runs(infra) == 2


def test_reuse_can_be_turned_off_per_stage(
    infra: FakeInfrastructure, repository: Repository, settings
) -> None:
    settings.SWEDIFY_PIPELINE_OVERRIDES = {
        **settings.SWEDIFY_PIPELINE_OVERRIDES,
        "quality": {"params": {"commands": QUALITY, "reuse_passed": False}},
    }
    sha = repository.commit("v1")
    deploy(sha)
    deploy(sha)

    assert quality_runs(infra) == 2


def test_without_a_git_checkout_nothing_is_reused(
    infra: FakeInfrastructure, tmp_path: Path, settings
) -> None:
    settings.BASE_DIR = tmp_path  # no repository here: the tree cannot be named
    deploy("a" * 40)
    deploy("a" * 40)

    assert quality_runs(infra) == 2
