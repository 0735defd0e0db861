from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.models import AuditEvent, Environment, PipelineRun
from deployments.pipeline import pipeline_run_create, pipeline_run_execute
from deployments.rollbacks import rollback_start
from deployments.services import (
    DeploymentError,
    LockHeld,
    RollbackRefused,
    environment_lock_break,
    release_create,
)
from tests.deployments.fakes import FakeInfrastructure

pytestmark = pytest.mark.django_db


def test_a_second_deploy_is_refused_while_one_holds_the_lock(infra: FakeInfrastructure) -> None:
    first = pipeline_run_create(release=release_create(git_sha="a" * 40), actor_name="one")
    second_release = release_create(git_sha="b" * 40)

    with pytest.raises(LockHeld, match=f"locked by {first.lock_name}"):
        pipeline_run_create(release=second_release, actor_name="two")

    assert PipelineRun.objects.count() == 1
    assert set(Environment.objects.values_list("lock_holder", flat=True)) == {first.lock_name}
    pipeline_run_execute(run_id=first.pk)
    # Once the first run is over, the next one may start.
    second = pipeline_run_create(release=second_release, actor_name="two")
    assert pipeline_run_execute(run_id=second.pk).status == "succeeded"


def test_a_fresh_lock_cannot_be_broken(infra: FakeInfrastructure) -> None:
    pipeline_run_create(release=release_create(git_sha="a" * 40), actor_name="one")
    production = Environment.objects.get(name="production")
    with pytest.raises(DeploymentError, match="younger than 30 minutes"):
        environment_lock_break(environment=production, reason="stuck", actor_name="ops")
    with pytest.raises(DeploymentError, match="needs a reason"):
        environment_lock_break(environment=production, reason="", actor_name="ops")


def test_a_stale_lock_can_be_broken_with_a_reason(infra: FakeInfrastructure) -> None:
    run = pipeline_run_create(release=release_create(git_sha="a" * 40), actor_name="one")
    Environment.objects.update(locked_at=timezone.now() - timedelta(hours=2))
    production = Environment.objects.get(name="production")

    environment_lock_break(environment=production, reason="worker died", actor_name="ops")

    production.refresh_from_db()
    assert production.lock_holder == ""
    event = AuditEvent.objects.get(action="environment.lock_break")
    assert event.details == {"holder": run.lock_name, "reason": "worker died"}


def test_a_rollback_is_refused_while_a_run_holds_the_lock(infra: FakeInfrastructure) -> None:
    for sha in ("a" * 40, "b" * 40):
        run = pipeline_run_create(release=release_create(git_sha=sha), actor_name="t")
        pipeline_run_execute(run_id=run.pk)
    pipeline_run_create(release=release_create(git_sha="c" * 40), actor_name="t")
    production = Environment.objects.get(name="production")
    with pytest.raises(RollbackRefused, match="locked by run:"):
        rollback_start(environment=production, reason="bad", actor_name="ops")
