"""Production refuses unsafe defaults: no silent Spotify sandbox, no unusable token key, no
gunicorn that respawns workers forever, HTTPS from one setting, no secret on the debug page."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.swedify.test_configuration_errors import REPO, assert_one_clear_line, run_python

REAL_SECRET = "a-real-secret-" + "x" * 40

# The production environment the README documents, with made-up values.
README_PRODUCTION = {
    "SWEDIFY_HTTPS": "true",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "swedify.example.org",
    "DATABASE_URL": "postgres://swedify:db-password@db.internal:5432/swedify",
    "REDIS_URL": "redis://:redis-password@cache.internal:6379/0",
    "SPOTIFY_CLIENT_ID": "production-client-id",
    "SPOTIFY_CLIENT_SECRET": "production-client-secret",
}

SETTINGS_PROBE = """
import json, django
django.setup()
from django.conf import settings
print(json.dumps({name: getattr(settings, name, None) for name in (
    "SPOTIFY_SANDBOX", "SPOTIFY_CLIENT_ID", "SPOTIFY_ACCOUNTS_URL", "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS",
    "SECURE_PROXY_SSL_HEADER",
)}))
"""


def production(tmp_path: Path, **env: str) -> dict[str, str]:
    return {"DEBUG": "false", "SECRET_KEY": REAL_SECRET, "SWEDIFY_DATA_DIR": str(tmp_path), **env}


def probe_settings(tmp_path: Path, **env: str) -> dict:
    result = run_python(["-c", SETTINGS_PROBE], DJANGO_SETTINGS_MODULE="swedify.settings", **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- The Spotify sandbox ------------------------------------------------------------------


def test_preflight_refuses_production_without_spotify_credentials_or_the_sandbox_opt_in(
    tmp_path: Path,
) -> None:
    result = run_python(["manage.py", "preflight"], **production(tmp_path))
    assert_one_clear_line(result, "no SPOTIFY_CLIENT_ID and the Spotify sandbox is off")
    assert "SWEDIFY_SANDBOX=true" in result.stderr


def test_the_web_app_refuses_production_without_spotify_credentials(tmp_path: Path) -> None:
    result = run_python(["-c", "import swedify.wsgi"], **production(tmp_path))
    assert_one_clear_line(result, "no SPOTIFY_CLIENT_ID and the Spotify sandbox is off")


def test_the_worker_refuses_production_without_spotify_credentials(tmp_path: Path) -> None:
    result = run_python(
        ["-m", "celery", "-A", "swedify", "worker", "--pool", "solo", "--without-mingle",
         "--without-gossip", "--loglevel", "WARNING"],
        **production(tmp_path),
    )  # fmt: skip
    assert result.returncode != 0
    assert "swedify worker: configuration error: no SPOTIFY_CLIENT_ID" in result.stderr
    assert "Traceback" not in result.stderr


def test_production_without_the_opt_in_never_points_at_the_sandbox(tmp_path: Path) -> None:
    found = probe_settings(tmp_path, **production(tmp_path))
    assert found["SPOTIFY_SANDBOX"] is False
    assert found["SPOTIFY_ACCOUNTS_URL"] == "https://accounts.spotify.com"
    assert found["SPOTIFY_CLIENT_ID"] == ""


def test_an_explicit_opt_in_runs_production_against_the_sandbox(tmp_path: Path) -> None:
    env = production(tmp_path, SWEDIFY_SANDBOX="true")
    assert run_python(["manage.py", "preflight"], **env).returncode == 0
    assert run_python(["-c", "import swedify.wsgi"], **env).returncode == 0
    found = probe_settings(tmp_path, **env)
    assert found["SPOTIFY_SANDBOX"] is True
    assert found["SPOTIFY_ACCOUNTS_URL"] == "http://127.0.0.1:8900"


def test_debug_without_spotify_credentials_uses_the_sandbox_by_default(tmp_path: Path) -> None:
    found = probe_settings(tmp_path, DEBUG="true", SWEDIFY_DATA_DIR=str(tmp_path))
    assert found["SPOTIFY_SANDBOX"] is True
    assert found["SPOTIFY_CLIENT_ID"] == "swedify-sandbox"


def test_spotify_credentials_need_their_secret(tmp_path: Path) -> None:
    result = run_python(
        ["manage.py", "preflight"], **production(tmp_path, SPOTIFY_CLIENT_ID="real-client")
    )
    assert_one_clear_line(result, "SPOTIFY_CLIENT_SECRET is not")


# --- Token keys ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["manage.py", "preflight"], ["-c", "import swedify.wsgi"]])
def test_a_token_key_that_is_not_a_fernet_key_is_refused_at_start_up(
    tmp_path: Path, command: list[str]
) -> None:
    env = production(tmp_path, SWEDIFY_SANDBOX="true", SWEDIFY_TOKEN_KEYS="not-a-key")
    result = run_python(command, **env)
    assert_one_clear_line(result, "SWEDIFY_TOKEN_KEYS entry 1 is not a Fernet key")
    assert "not-a-key" not in result.stderr  # a key is a secret, even a broken one


def test_a_broken_second_token_key_is_named_by_its_position(tmp_path: Path) -> None:
    keys = f"{Fernet.generate_key().decode()},also-not-a-key"
    env = production(tmp_path, SWEDIFY_SANDBOX="true", SWEDIFY_TOKEN_KEYS=keys)
    result = run_python(["manage.py", "preflight"], **env)
    assert_one_clear_line(result, "SWEDIFY_TOKEN_KEYS entry 2 is not a Fernet key")


def test_real_token_keys_pass_preflight(tmp_path: Path) -> None:
    keys = f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}"
    env = production(tmp_path, SWEDIFY_SANDBOX="true", SWEDIFY_TOKEN_KEYS=keys)
    result = run_python(["manage.py", "preflight"], **env)
    assert result.returncode == 0, result.stderr


# --- gunicorn -----------------------------------------------------------------------------


def test_gunicorn_stops_instead_of_respawning_workers_that_cannot_boot(tmp_path: Path) -> None:
    # DJANGO_ALLOW_ASYNC_UNSAFE: set in this process by the browser tests' conftest.
    inherited = (
        "DATABASE_", "REDIS_", "CELERY_", "SECRET_KEY", "DEBUG", "SWEDIFY_", "SPOTIFY_",
        "DJANGO_ALLOW_ASYNC_UNSAFE",
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(inherited)}
    env.update(DEBUG="false", SWEDIFY_DATA_DIR=str(tmp_path))  # the development secret
    log = tmp_path / "gunicorn.log"
    started = time.monotonic()
    with log.open("w") as output:
        master = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "swedify.wsgi",
             "--bind", "127.0.0.1:0", "--workers", "2", "--no-control-socket"],
            cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            # Respawning forever is the wrong behaviour: it never exits on its own.
            master.wait(timeout=60)
        finally:
            if master.poll() is None:
                master.kill()
                master.wait(timeout=10)
    text = log.read_text()
    assert master.returncode != 0, text
    assert "Worker failed to boot" in text
    assert "swedify web: configuration error: SECRET_KEY is the development key" in text
    # Two workers, each booted once (42 boots in 20 s before the fix).
    assert text.count("Booting worker") <= 4, text
    assert time.monotonic() - started < 60


# --- HTTPS --------------------------------------------------------------------------------


def test_one_setting_turns_on_everything_https_needs(tmp_path: Path) -> None:
    found = probe_settings(tmp_path, **production(tmp_path, SWEDIFY_HTTPS="true"))
    assert found["SESSION_COOKIE_SECURE"] is True
    assert found["CSRF_COOKIE_SECURE"] is True
    assert found["SECURE_SSL_REDIRECT"] is True
    assert found["SECURE_HSTS_SECONDS"] >= 60 * 60 * 24 * 365
    assert found["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_without_https_nothing_is_redirected_or_trusted_from_the_proxy(tmp_path: Path) -> None:
    found = probe_settings(tmp_path, **production(tmp_path))
    assert found["SECURE_SSL_REDIRECT"] is False
    assert found["SECURE_HSTS_SECONDS"] == 0
    assert found["SECURE_PROXY_SSL_HEADER"] is None


@pytest.mark.parametrize(
    ("env", "secure"),
    [
        ({"DEBUG": "false"}, True),
        ({"DEBUG": "false", "SESSION_COOKIE_SECURE": "false"}, False),
        ({"DEBUG": "true"}, False),
        ({"DEBUG": "true", "SWEDIFY_HTTPS": "true"}, True),
    ],
)
def test_cookies_are_secure_without_debug_unless_explicitly_disabled(
    tmp_path: Path, env: dict[str, str], secure: bool
) -> None:
    found = probe_settings(tmp_path, SECRET_KEY=REAL_SECRET, SWEDIFY_DATA_DIR=str(tmp_path), **env)
    assert found["SESSION_COOKIE_SECURE"] is secure
    assert found["CSRF_COOKIE_SECURE"] is secure


HTTPS_PROBE = """
import json, django
django.setup()
from django.test import Client
client = Client()
plain = client.get("/", HTTP_HOST="swedify.example.org")
health = client.get("/health", HTTP_HOST="swedify.example.org")
proxied = client.get(
    "/health", HTTP_HOST="swedify.example.org", HTTP_X_FORWARDED_PROTO="https"
)
print(json.dumps({
    "plain": [plain.status_code, plain.get("Location")],
    "health": [health.status_code, health.get("Strict-Transport-Security")],
    "proxied": [proxied.status_code, proxied.get("Strict-Transport-Security")],
}))
"""


def test_https_redirects_pages_but_not_the_health_probe_and_sends_hsts(tmp_path: Path) -> None:
    env = {**README_PRODUCTION, "SWEDIFY_DATA_DIR": str(tmp_path)}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", REDIS_URL="")
    result = run_python(["-c", HTTPS_PROBE], DJANGO_SETTINGS_MODULE="swedify.settings", **env)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["plain"] == [301, "https://swedify.example.org/"]
    # HAProxy and the deploy pipeline probe a slot over plain HTTP on loopback.
    assert found["health"] == [200, None]
    assert found["proxied"][0] == 200
    assert found["proxied"][1].startswith("max-age=31536000")


def test_the_deploy_check_is_clean_with_the_documented_production_environment(
    tmp_path: Path,
) -> None:
    result = run_python(
        ["manage.py", "check", "--deploy"],
        SWEDIFY_DATA_DIR=str(tmp_path),
        **README_PRODUCTION,
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stderr + result.stdout


def test_the_deploy_check_warns_about_plain_http_and_the_sandbox_in_production(
    tmp_path: Path,
) -> None:
    # The negative control: the same command does see what is missing.
    env = {**README_PRODUCTION, "SWEDIFY_HTTPS": "false", "SWEDIFY_SANDBOX": "true"}
    result = run_python(["manage.py", "check", "--deploy"], SWEDIFY_DATA_DIR=str(tmp_path), **env)
    for check in ("security.W004", "security.W008", "swedify.W003"):
        assert check in result.stderr
