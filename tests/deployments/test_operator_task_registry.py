"""A web process (not a worker) can queue the deployments' tasks: the admin's Deploy button
left every run queued with "could not be queued (NotRegistered)" under `make run`, because
only a worker autodiscovers task modules and the pipeline queues its task by name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import django
django.setup()
from celery import current_app
from deployments.pipeline import PIPELINE_TASK
print(PIPELINE_TASK in current_app.tasks)
print("deployments.tasks.rollback_continue_task" in current_app.tasks)
"""


def test_a_fresh_django_process_knows_the_pipeline_task_by_name() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={
            "DJANGO_SETTINGS_MODULE": "swedify.settings",
            "SWEDIFY_SANDBOX": "true",
            "PATH": os.environ["PATH"],
        },
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]
