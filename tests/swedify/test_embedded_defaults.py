"""With no environment set, Swedify runs on embedded defaults that really work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import json
import django
django.setup()
from django.conf import settings
from swedify.datadir import data_dir_prepare
data_dir_prepare()
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("PRAGMA journal_mode")
    journal = cursor.fetchone()[0]
from swedify.celery import app
with app.connection_for_write() as broker:
    broker.default_channel  # the transport makes its folders here, where they are first needed
print(json.dumps({
    "engine": settings.DATABASES["default"]["ENGINE"],
    "name": str(settings.DATABASES["default"]["NAME"]),
    "journal": journal,
    "cache": settings.CACHES["default"]["BACKEND"],
    "sessions": settings.SESSION_ENGINE,
    "broker": app.conf.broker_url,
    "broker_folder": app.conf.broker_transport_options.get("data_folder_in"),
    "acks_late": app.conf.task_acks_late,
    "prefetch": app.conf.worker_prefetch_multiplier,
}))
"""


def embedded_settings(tmp_path: Path) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}
    }
    env.update(SWEDIFY_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="swedify.settings")
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_it_uses_sqlite_in_wal_mode_under_the_data_dir(tmp_path: Path) -> None:
    found = embedded_settings(tmp_path)
    assert found["engine"] == "django.db.backends.sqlite3"
    assert found["name"] == str(tmp_path / "db.sqlite3")
    assert found["journal"] == "wal"


def test_it_uses_local_memory_cache_and_database_backed_sessions(tmp_path: Path) -> None:
    found = embedded_settings(tmp_path)
    assert found["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert found["sessions"] == "django.contrib.sessions.backends.cached_db"


def test_it_uses_a_filesystem_broker_that_needs_no_server(tmp_path: Path) -> None:
    found = embedded_settings(tmp_path)
    assert found["broker"] == "filesystem://"
    assert found["broker_folder"] == str(tmp_path / "broker" / "queue")
    assert (tmp_path / "broker" / "queue").is_dir()


NOTHING_YET = """
import json, django
django.setup()
from django.conf import settings
from swedify.celery import app
print(json.dumps({"data_dir": str(settings.DATA_DIR), "broker": app.conf.broker_url}))
"""


def test_importing_the_settings_and_the_celery_app_creates_no_folder(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "CELERY_"))}
    env.pop("REDIS_URL", None)
    env.update(SWEDIFY_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="swedify.settings")
    result = subprocess.run(
        [sys.executable, "-c", NOTHING_YET],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "data_dir": str(data_dir),
        "broker": "filesystem://",
    }
    assert not data_dir.exists()


def test_workers_acknowledge_late_and_prefetch_one_task(tmp_path: Path) -> None:
    found = embedded_settings(tmp_path)
    assert found["acks_late"] is True
    assert found["prefetch"] == 1
