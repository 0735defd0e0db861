"""The data folder (``SWEDIFY_DATA_DIR``): made where it is first needed, private to its owner.

Importing the settings creates nothing; ``manage.py``, the web and worker entry points and the
test suite call ``data_dir_prepare`` before they use the folder (the filesystem broker makes
its own folders when it first opens a channel). The folder is ``0700`` and the SQLite database
(sessions, encrypted Spotify tokens) ``0600``: SQLite gives its ``-wal`` and ``-shm`` files the
mode of the database file.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from django.conf import settings

PRIVATE_FOLDER = 0o700
PRIVATE_FILE = 0o600


def data_dir_prepare() -> None:
    """Create the data folder, the static files' folder and the SQLite file, if missing."""
    data_dir = Path(settings.DATA_DIR)
    folder_create_private(path=data_dir)
    folder_narrow_private(path=data_dir)
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
    for database in settings.DATABASES.values():
        if database["ENGINE"] != "django.db.backends.sqlite3":
            continue
        name = str(database.get("NAME") or "")
        if name and name != ":memory:" and not name.startswith("file:"):
            sqlite_file_create_private(path=Path(name))


def folder_create_private(*, path: Path) -> None:
    """Create ``path``, and every missing folder above it, readable by its owner only. An
    existing folder is left as it is: the operator may have chosen a shared one on purpose
    (and it may be /tmp)."""
    missing: list[Path] = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=PRIVATE_FOLDER)
            # mkdir's mode passes through the umask; say it exactly.
            os.chmod(folder, PRIVATE_FOLDER)


def folder_narrow_private(*, path: Path) -> None:
    """The data folder, if this user owns it, is narrowed to ``0700`` (one made by an earlier
    version, or by a library, is ``0755``); never a shared folder with the sticky bit (/tmp)."""
    status = path.stat()
    ours = status.st_uid == os.geteuid() and not status.st_mode & stat.S_ISVTX
    if ours and stat.S_IMODE(status.st_mode) != PRIVATE_FOLDER:
        os.chmod(path, PRIVATE_FOLDER)


def sqlite_file_create_private(*, path: Path) -> None:
    """An empty file is a valid empty SQLite database: creating it first, ``0600``, means
    SQLite never creates it with the umask's looser mode. A database (and its journal files)
    left readable by an earlier version is narrowed to ``0600``."""
    folder_create_private(path=path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if candidate.stat().st_uid == os.geteuid() and candidate.stat().st_mode & 0o077:
                os.chmod(candidate, PRIVATE_FILE)
        except FileNotFoundError:
            continue
