"""The quality gate tests a release with the packages it pins: this checkout's interpreter
when its requirements are the same, else a virtualenv built from its requirements-dev.txt,
kept per requirements so that the next release with the same pins installs nothing. Offline:
the one extra package is a tiny wheel found through PIP_FIND_LINKS with PIP_NO_INDEX."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from deployments.adapters import Infrastructure
from deployments.models import PipelineRun
from deployments.pipeline import pipeline_run_create, pipeline_run_execute
from deployments.services import release_create
from tests.deployments.fakes import FAST_PIPELINE, FakeInfrastructure
from tests.deployments.test_agent_venv import PROBE, write_wheel

pytestmark = pytest.mark.django_db

CHECKOUT = Path(django_settings.BASE_DIR)


@pytest.fixture
def offline_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    wheels = tmp_path / "wheels"
    write_wheel(wheels)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    return wheels


@pytest.fixture
def seeded(settings, tmp_path: Path) -> Path:
    """Gate virtualenvs see this interpreter's packages behind their own (no full install)."""
    settings.SWEDIFY_AGENT_VENV_SEED = True
    settings.DATA_DIR = tmp_path / "data"
    return settings.DATA_DIR


def release_folder(tmp_path: Path, name: str, *, extra: str = "") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for requirements in ("requirements.txt", "requirements-dev.txt"):
        shutil.copy(CHECKOUT / requirements, folder / requirements)
    if extra:
        with (folder / "requirements-dev.txt").open("a") as dev:
            dev.write(extra)
    return folder


def test_a_release_with_this_checkouts_requirements_is_gated_with_this_interpreter(
    tmp_path: Path, seeded: Path
) -> None:
    python = Infrastructure().gate_python(source_dir=release_folder(tmp_path, "same"))

    assert python == sys.executable
    assert not (seeded / "venvs").exists()


def test_a_release_that_pins_another_package_is_gated_in_a_virtualenv_with_it(
    tmp_path: Path, seeded: Path, offline_index: Path
) -> None:
    extra = "swedify-agent-probe==1.0\n"
    first = Infrastructure().gate_python(source_dir=release_folder(tmp_path, "r1", extra=extra))

    assert first != sys.executable
    assert Path(first).is_relative_to(seeded / "venvs")
    found = subprocess.run(
        [first, "-c", f"import {PROBE}, django, pytest"], capture_output=True, text=True
    )
    assert found.returncode == 0, found.stderr
    # The next release with the same pins reuses it: nothing left to install from.
    offline_index.joinpath(f"{PROBE}-1.0-py3-none-any.whl").unlink()
    second = Infrastructure().gate_python(source_dir=release_folder(tmp_path, "r2", extra=extra))
    assert second == first


def test_the_gate_commands_run_with_the_interpreter_the_release_needs(
    infra: FakeInfrastructure, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.SWEDIFY_PIPELINE_OVERRIDES = {
        **FAST_PIPELINE,
        "quality": {"params": {"commands": ["{python} -m pytest -q"]}},
    }
    monkeypatch.setattr(
        infra, "gate_python", lambda source_dir: "/data/venvs/abc/bin/python", raising=False
    )
    run = pipeline_run_create(release=release_create(git_sha="a" * 40), actor_name="t")

    run = pipeline_run_execute(run_id=run.pk)

    assert run.status == PipelineRun.Status.SUCCEEDED
    assert "/data/venvs/abc/bin/python -m pytest -q" in infra.commands
