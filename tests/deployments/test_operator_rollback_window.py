"""The rollback window is a setting (SWEDIFY_ROLLBACK_WINDOW_SECONDS), and cleanup stops the
old slot only once it has ended, counted from the cutover: the README's "the old slot stays
warm through the rollback window" is what happens."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deployments.models import Environment, PipelineRun
from deployments.pipeline import pipeline_definition, pipeline_run_create, pipeline_run_execute
from deployments.rollbacks import rollback_start
from deployments.services import release_create
from tests.deployments.fakes import FAST_PIPELINE, FakeInfrastructure

pytestmark = pytest.mark.django_db

# The fast pipeline without its own rollback window, so that the setting decides.
WITHOUT_WINDOW = {**FAST_PIPELINE, "cleanup": {"params": {"drain_seconds": 0}}}


def deploy(sha: str) -> PipelineRun:
    run = pipeline_run_create(release=release_create(git_sha=sha), actor_name="t")
    return pipeline_run_execute(run_id=run.pk)


def test_the_cleanup_stage_takes_its_window_from_the_setting(settings) -> None:
    settings.SWEDIFY_PIPELINE_OVERRIDES = {}
    settings.SWEDIFY_ROLLBACK_WINDOW_SECONDS = 900

    cleanup = next(s for s in pipeline_definition() if s.key == "cleanup")

    assert cleanup.params["rollback_window_seconds"] == 900


def test_cleanup_keeps_the_old_slot_warm_until_the_settings_window_has_ended(
    infra: FakeInfrastructure, settings
) -> None:
    settings.SWEDIFY_PIPELINE_OVERRIDES = WITHOUT_WINDOW
    settings.SWEDIFY_ROLLBACK_WINDOW_SECONDS = 600
    deploy("a" * 40)
    infra.sleeps.clear()

    run = deploy("b" * 40)

    assert run.status == "succeeded"
    # Production waits out the rest of the 600 s since its cutover (a moment ago).
    assert 590 < infra.sleeps[-1] <= 600
    assert ("production", "blue") in infra.stops
    assert "stopped blue 600 s after the cutover" in run.stages.get(key="cleanup").summary


def test_a_rollback_late_in_the_window_is_still_a_switch_back(
    infra: FakeInfrastructure, settings
) -> None:
    settings.SWEDIFY_PIPELINE_OVERRIDES = WITHOUT_WINDOW
    settings.SWEDIFY_ROLLBACK_WINDOW_SECONDS = 600
    deploy("a" * 40)
    rollbacks = []

    def operator_rolls_back_while_cleanup_waits(seconds: float) -> None:
        # The cleanup's wait for the window is the moment the operator acts in.
        if seconds > 500 and not rollbacks:
            production = Environment.objects.get(name="production")
            rollbacks.append(rollback_start(environment=production, reason="late", actor_name="o"))

    infra.on_sleep.append(operator_rolls_back_while_cleanup_waits)
    run = deploy("b" * 40)

    assert (rollbacks[0].mode, rollbacks[0].status) == ("switch_back", "succeeded")
    assert ("production", "blue") not in infra.stops
    assert "serves again" in run.stages.get(key="cleanup").summary


def test_an_override_of_the_window_still_wins_over_the_setting(
    infra: FakeInfrastructure, settings
) -> None:
    settings.SWEDIFY_PIPELINE_OVERRIDES = {
        **FAST_PIPELINE,
        "cleanup": {"params": {"drain_seconds": 0, "rollback_window_seconds": 45}},
    }
    settings.SWEDIFY_ROLLBACK_WINDOW_SECONDS = 600
    deploy("a" * 40)
    infra.sleeps.clear()

    deploy("b" * 40)

    assert 40 < infra.sleeps[-1] <= 45


def test_a_negative_window_is_refused_when_the_settings_load() -> None:
    env = {**os.environ, "SWEDIFY_ROLLBACK_WINDOW_SECONDS": "-5"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=Path(__file__).resolve().parents[2],
        env={**env, "DJANGO_SETTINGS_MODULE": "swedify.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SWEDIFY_ROLLBACK_WINDOW_SECONDS must be 0 or more seconds" in result.stderr
