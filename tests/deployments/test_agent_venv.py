"""Release virtualenvs on an app host: built from the release's requirements.txt (so a release
that adds a requirement deploys with it), shared by releases with the same requirements, never
left half-built. Offline: the one extra package is a tiny wheel this test writes, found through
pip's own PIP_FIND_LINKS with PIP_NO_INDEX."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import zipfile
from pathlib import Path

import django
import pytest

from deployments.agent import AgentError, venv_ensure, venv_python

PROBE = "swedify_agent_probe"


def write_wheel(folder: Path, *, version: str = "1.0") -> Path:
    """A minimal pure-Python wheel of ``swedify-agent-probe`` (PEP 427 layout and RECORD)."""
    dist_info = f"{PROBE}-{version}.dist-info"
    files = {
        f"{PROBE}/__init__.py": f'VERSION = "{version}"\n'.encode(),
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: swedify-agent-probe\nVersion: {version}\n"
        ).encode(),
        f"{dist_info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: swedify-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    record = []
    for name, content in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(content)}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{PROBE}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return wheel


def release_with(folder: Path, requirements: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "requirements.txt").write_text(requirements)
    return folder


def run_in(venv: Path, code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(venv_python(venv)), "-c", code], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def offline_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    wheels = tmp_path / "wheels"
    write_wheel(wheels)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    return wheels


@pytest.fixture
def host_data_dir(settings, tmp_path: Path) -> Path:
    settings.DATA_DIR = tmp_path / "host"
    return settings.DATA_DIR


def test_a_release_that_adds_a_requirement_gets_it_in_its_virtualenv(
    offline_index: Path, host_data_dir: Path, tmp_path: Path
) -> None:
    before = release_with(tmp_path / "before", f"Django=={django.__version__}\n")
    after = release_with(
        tmp_path / "after", f"Django=={django.__version__}\nswedify-agent-probe==1.0\n"
    )
    old_venv, _ = venv_ensure(source_dir=before, seed=True)
    assert run_in(old_venv, f"import {PROBE}").returncode != 0  # negative control

    venv, reused = venv_ensure(source_dir=after, seed=True)
    assert reused is False
    assert venv != old_venv
    assert venv.parent == host_data_dir / "venvs"
    found = run_in(venv, f"import {PROBE}, django; print({PROBE}.__file__, django.__file__)")
    assert found.returncode == 0, found.stderr
    probe_file, django_file = found.stdout.split()
    # Installed into the release's virtualenv; the seed provides what was already there.
    assert Path(probe_file).is_relative_to(venv)
    assert not Path(django_file).is_relative_to(venv)


def test_a_second_release_with_the_same_requirements_reuses_the_virtualenv(
    offline_index: Path, host_data_dir: Path, tmp_path: Path
) -> None:
    requirements = "swedify-agent-probe==1.0\n"
    first, reused_first = venv_ensure(
        source_dir=release_with(tmp_path / "r1", requirements), seed=True
    )
    offline_index.joinpath(f"{PROBE}-1.0-py3-none-any.whl").unlink()  # nothing to install now
    second, reused_second = venv_ensure(
        source_dir=release_with(tmp_path / "r2", requirements), seed=True
    )
    assert (reused_first, reused_second) == (False, True)
    assert second == first


def test_a_failed_install_leaves_no_virtualenv_that_counts_as_ready(
    offline_index: Path, host_data_dir: Path, tmp_path: Path
) -> None:
    release = release_with(tmp_path / "release", "swedify-agent-probe==9.9\n")
    with pytest.raises(AgentError, match=r"installing the requirements of release failed"):
        venv_ensure(source_dir=release, seed=True)
    assert list((host_data_dir / "venvs").glob("*/.swedify-venv-ready")) == []
    # Once the package exists, the same release installs.
    write_wheel(offline_index, version="9.9")
    venv, reused = venv_ensure(source_dir=release, seed=True)
    assert reused is False
    assert run_in(venv, f"import {PROBE}; print({PROBE}.VERSION)").stdout.strip() == "9.9"


@pytest.mark.slow
def test_without_a_seed_the_virtualenv_holds_exactly_the_release_requirements(
    offline_index: Path, host_data_dir: Path, tmp_path: Path
) -> None:
    release = release_with(tmp_path / "release", "swedify-agent-probe==1.0\n")
    venv, reused = venv_ensure(source_dir=release, seed=False)
    assert reused is False
    assert run_in(venv, f"import {PROBE}").returncode == 0
    # Nothing leaks in from the agent's own virtualenv: the release's requirements are all.
    assert run_in(venv, "import django").returncode != 0
