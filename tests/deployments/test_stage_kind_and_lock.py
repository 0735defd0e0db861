"""A run keeps what it was created with: each stage's kind, and the lock names its run."""

from __future__ import annotations

import pytest

from deployments.models import Environment, StageRun
from deployments.pipeline import pipeline_run_create, pipeline_run_execute
from deployments.services import release_create
from tests.deployments.fakes import FakeInfrastructure

pytestmark = pytest.mark.django_db


def test_a_stage_runs_by_the_kind_its_run_recorded_not_by_todays_pipeline(
    infra: FakeInfrastructure,
) -> None:
    run = pipeline_run_create(release=release_create(git_sha="a" * 40), actor_name="t", queue=False)
    assert dict(run.stages.values_list("key", "kind"))["security"] == "commands"
    # The pipeline was edited since: this key no longer exists in today's definition.
    StageRun.objects.filter(run=run, key="security").update(key="dependency_scan")

    run = pipeline_run_execute(run_id=run.pk)

    assert run.status == "succeeded"
    assert run.stages.get(key="dependency_scan").outcome == "succeeded"
    assert "dependency-audit" in infra.commands


def test_a_stage_row_of_an_older_release_without_a_kind_falls_back_to_its_key(
    infra: FakeInfrastructure,
) -> None:
    run = pipeline_run_create(release=release_create(git_sha="a" * 40), actor_name="t", queue=False)
    StageRun.objects.filter(run=run).update(kind="")

    assert pipeline_run_execute(run_id=run.pk).status == "succeeded"


def test_the_deploy_lock_names_its_run_as_a_key_and_frees_with_it(
    infra: FakeInfrastructure,
) -> None:
    run = pipeline_run_create(release=release_create(git_sha="a" * 40), actor_name="t", queue=False)
    locks = set(Environment.objects.values_list("lock_holder", "lock_run"))
    assert locks == {(run.lock_name, run.pk)}

    pipeline_run_execute(run_id=run.pk)

    assert set(Environment.objects.values_list("lock_holder", "lock_run")) == {("", None)}
