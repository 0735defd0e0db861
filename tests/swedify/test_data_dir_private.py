"""The data folder and the files that hold sessions and tokens are private to their owner,
and they are made where they are first needed, not when the settings are imported."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from swedify.datadir import folder_create_private, folder_narrow_private
from tests.swedify.test_configuration_errors import REPO


def run_with_umask_022(args: list[str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    inherited = ("DATABASE_", "REDIS_", "CELERY_", "SECRET_KEY", "DEBUG", "SWEDIFY_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(inherited)}
    env.update(DEBUG="true", SWEDIFY_DATA_DIR=str(data_dir))
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        umask=0o022,  # a usual umask: files would be 0644 and folders 0755 by default
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_migrated_database_and_its_folder_are_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "var"
    result = run_with_umask_022(["manage.py", "migrate", "--no-input", "-v", "0"], data_dir)
    assert result.returncode == 0, result.stderr
    assert mode(data_dir) == 0o700
    assert mode(tmp_path / "new") == 0o700  # made on the way, so made private too
    database = data_dir / "db.sqlite3"
    assert database.stat().st_size > 0
    assert mode(database) == 0o600
    journals = [data_dir / "db.sqlite3-wal", data_dir / "db.sqlite3-shm"]
    for journal in (path for path in journals if path.exists()):
        assert mode(journal) == 0o600, journal


def test_the_web_entry_point_makes_the_data_folder_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    result = run_with_umask_022(["-c", "import swedify.wsgi"], data_dir)
    assert result.returncode == 0, result.stderr
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "db.sqlite3") == 0o600
    assert (data_dir / "static").is_dir()


def test_a_database_left_readable_by_an_earlier_version_is_narrowed(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    data_dir.mkdir(mode=0o755)
    os.chmod(data_dir, 0o755)  # noqa: S103 - what an earlier version left
    database = data_dir / "db.sqlite3"
    database.touch()
    os.chmod(database, 0o644)
    result = run_with_umask_022(["manage.py", "preflight"], data_dir)
    assert result.returncode == 0, result.stderr
    assert mode(data_dir) == 0o700
    assert mode(database) == 0o600


def test_a_shared_folder_with_the_sticky_bit_is_left_as_it_is(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # noqa: S103 - like /tmp
    folder_create_private(path=shared)
    folder_narrow_private(path=shared)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777


@pytest.mark.parametrize("owner_mode", [0o755, 0o750])
def test_an_own_folder_is_narrowed(tmp_path: Path, owner_mode: int) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    os.chmod(folder, owner_mode)
    folder_narrow_private(path=folder)
    assert mode(folder) == 0o700
