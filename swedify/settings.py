"""Swedify's one settings module.

Every setting is read from the environment (see ``docs/contract.md``) and has a safe local
default: with nothing set, Swedify runs on SQLite, a local-memory cache and a filesystem
Celery broker under ``SWEDIFY_DATA_DIR``. It talks to the bundled Spotify sandbox only with
``DEBUG`` on or ``SWEDIFY_SANDBOX=true``; the start-up guards (``swedify.preflight``) refuse a
production configuration that has neither Spotify credentials nor that opt-in.

Importing this module creates nothing on disk: the data folder is made where it is first
needed (``swedify.datadir``: ``manage.py``, the web and worker entry points, the test suite).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    value = os.environ.get(name, "").strip()
    return value if value else default


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    value = env_str(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None


# --- Core ---------------------------------------------------------------------------------

DEVELOPMENT_SECRET_KEY = "swedify-development-key-never-use-in-production"  # noqa: S105
SECRET_KEY = env_str("SECRET_KEY", DEVELOPMENT_SECRET_KEY)
DEBUG = env_bool("DEBUG", False)
# Refusing the development key with DEBUG off is a deploy check (swedify.checks) and a guard
# in every server entry point (swedify.preflight), so that a mistake stops the process with
# one clear line instead of silently signing sessions with a public key.
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# Peers whose X-Forwarded-For is believed (our HAProxy instances): the per-address limits of
# genres.limits count the client behind them, not the proxy.
SWEDIFY_TRUSTED_PROXIES = env_list("SWEDIFY_TRUSTED_PROXIES", "127.0.0.0/8,::1")
# JSON 403 under /api/ (the contract), Django's page elsewhere.
CSRF_FAILURE_VIEW = "genres.views.csrf_failure"

DATA_DIR = Path(env_str("SWEDIFY_DATA_DIR", str(BASE_DIR / "var")))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "axes",
    "swedify",
    "genres",
    "deployments",
]

MIDDLEWARE = [
    # Outermost: a body left unread by an early answer (a CSRF 403, a redirect) is read and
    # discarded, so the kept-alive connection starts cleanly at the next request.
    "swedify.middleware.RequestBodyDrainMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "swedify.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # After sessions, before CommonMiddleware (Django's documented place): picks the language
    # from the django_language cookie, else Accept-Language, else LANGUAGE_CODE.
    "django.middleware.locale.LocaleMiddleware",
    "swedify.middleware.AdminInEnglishMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it answers a locked-out admin login with 429.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "swedify.urls"
WSGI_APPLICATION = "swedify.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "swedify.middleware.csp_nonce",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------


def database_from_url(url: str) -> dict:
    """Parse DATABASE_URL into Django's form; a malformed URL is one clear error."""
    import dj_database_url

    scheme = urlsplit(url).scheme
    if scheme not in {"sqlite", "postgres", "postgresql", "pgsql"}:
        raise ImproperlyConfigured(
            f"DATABASE_URL must start with sqlite:/// or postgres://, not {scheme or url!r}"
        )
    try:
        config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    except ValueError as error:
        raise ImproperlyConfigured(f"DATABASE_URL is malformed: {error}") from None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        if not config.get("NAME"):
            raise ImproperlyConfigured("DATABASE_URL names no SQLite file")
        # A web process and a worker write to one file: WAL lets readers run beside the
        # writer, IMMEDIATE transactions take the write lock up front (no upgrade deadlock),
        # and the busy timeout turns brief contention into waiting instead of errors.
        config["CONN_MAX_AGE"] = 0
        # A file, not memory, so that a real Celery worker in a test can share the test
        # database with the test process.
        config["TEST"] = {"NAME": str(DATA_DIR / "test-db.sqlite3")}
        config["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    else:
        if not config.get("NAME"):
            raise ImproperlyConfigured("DATABASE_URL names no database")
        config.setdefault("OPTIONS", {})["connect_timeout"] = 5
    return config


DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}")
DATABASES = {"default": database_from_url(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and sessions -------------------------------------------------------------------

REDIS_URL = env_str("REDIS_URL")
# Sub-second socket timeouts: with Redis down, a page pays at most this per cache call
# instead of redis-py's default of several seconds.
REDIS_SOCKET_TIMEOUT = 0.25

if REDIS_URL:
    from swedify.redis_breaker import BreakerConnection

    if urlsplit(REDIS_URL).scheme not in {"redis", "rediss", "unix"}:
        raise ImproperlyConfigured("REDIS_URL must start with redis://, rediss:// or unix://")
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            # Several deployments (or a benchmark run) can share one Redis under their own.
            "KEY_PREFIX": env_str("SWEDIFY_CACHE_PREFIX", "swedify"),
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": REDIS_SOCKET_TIMEOUT,
                "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
                "IGNORE_EXCEPTIONS": True,
                "CONNECTION_POOL_KWARGS": {
                    "retry_on_timeout": False,
                    "max_connections": 50,
                    # Fails fast for a few seconds after a Redis failure (swedify.redis_breaker).
                    "connection_class": BreakerConnection,
                },
            },
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "swedify",
        }
    }
# A Redis error is logged and treated as a cache miss, never a failed request.
DJANGO_REDIS_IGNORE_EXCEPTIONS = True
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True

# Database-backed sessions with a cache in front: a Redis outage logs nobody out.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SESSION_SERIALIZER = "django.contrib.sessions.serializers.JSONSerializer"
SESSION_COOKIE_AGE = 60 * 60 * 24 * 30
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Served over TLS behind a proxy (the contract's SWEDIFY_HTTPS): one switch for everything
# HTTPS needs, see "Static files, i18n, security headers" below.
SWEDIFY_HTTPS = env_bool("SWEDIFY_HTTPS", False)
# Without DEBUG a session cookie sent over plain HTTP is a stolen session: Secure unless an
# operator says otherwise (plain HTTP on loopback: `make run`, the test suite).
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", SWEDIFY_HTTPS or not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# --- Celery -------------------------------------------------------------------------------

BROKER_DIR = DATA_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The folders are made by the transport when it first opens a channel
    # (swedify.filesystem_broker), in whichever process sends or consumes first.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        # Broadcast (control) messages; kombu's default is a folder in the working directory.
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # A task not acknowledged within this time is handed to another worker; it must be
    # longer than the longest task so a slow scan is not run twice at once.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 6 * 60 * 60}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
# Periodic work (run by `celery worker --beat` or a separate `celery beat`); every task here
# is idempotent, so two schedulers by mistake cost requests, not correctness.
CELERY_BEAT_SCHEDULE = {
    # Resumes paused scans whose resumeAt has passed and re-queues jobs whose worker died.
    "genres-jobs-recover": {"task": "genres.tasks.jobs_recover", "schedule": 30.0},
    # Records each environment's detailed health for the uptime report.
    "deployments-environments-probe": {
        "task": "deployments.tasks.environments_probe",
        "schedule": 60.0,
    },
    # Deletes expired sessions (abandoned sign-ins expire within minutes).
    "swedify-sessions-clear": {"task": "swedify.tasks.sessions_clear", "schedule": 3600.0},
    # Auto-sync: starts the listeners' runs that are due, advances runs whose task was lost.
    "genres-sync-tick": {"task": "genres.sync_tasks.syncs_tick", "schedule": 60.0},
}
# A scan or playlist job runs at least this many seconds before it hands its worker to other
# waiting work and queues itself again (genres.jobs), so a small scan never waits for big ones.
SWEDIFY_JOB_SLICE_SECONDS = env_int("SWEDIFY_JOB_SLICE_SECONDS", 5)
# Auto-sync (genres.sync): a listener's default interval, and how far each run moves from
# it either way (percent of the interval), so listeners who turned it on together spread out.
SYNC_DEFAULT_INTERVAL_HOURS = env_int("SWEDIFY_SYNC_INTERVAL_HOURS", 6)
SYNC_JITTER_PERCENT = env_int("SWEDIFY_SYNC_JITTER_PERCENT", 10)
# Scheduled runs in progress at a time (about the number of worker processes), so the queue
# holds only a few background scans ahead of a listener's (genres.sync).
SYNC_MAX_CONCURRENT_RUNS = env_int("SWEDIFY_SYNC_MAX_CONCURRENT_RUNS", 2)

# --- Spotify ------------------------------------------------------------------------------

SANDBOX_URL = env_str("SWEDIFY_SANDBOX_URL", "http://127.0.0.1:8900")
SPOTIFY_CLIENT_ID = env_str("SPOTIFY_CLIENT_ID")
# The sandbox signs listeners in with a public secret, and whatever process binds its port
# decides who is who: never a silent fallback in production. On by default only for local
# development (DEBUG without Spotify credentials); anything else opts in explicitly, and the
# start-up guards refuse a production configuration with neither (swedify.preflight).
SPOTIFY_SANDBOX = env_bool("SWEDIFY_SANDBOX", DEBUG and not SPOTIFY_CLIENT_ID)
if SPOTIFY_SANDBOX:
    SPOTIFY_CLIENT_ID = "swedify-sandbox"
    SPOTIFY_CLIENT_SECRET = env_str("SPOTIFY_CLIENT_SECRET", "swedify-sandbox-secret")
    SPOTIFY_ACCOUNTS_URL = env_str("SPOTIFY_ACCOUNTS_URL", SANDBOX_URL)
    SPOTIFY_API_URL = env_str("SPOTIFY_API_URL", f"{SANDBOX_URL}/v1")
else:
    SPOTIFY_CLIENT_SECRET = env_str("SPOTIFY_CLIENT_SECRET")
    SPOTIFY_ACCOUNTS_URL = env_str("SPOTIFY_ACCOUNTS_URL", "https://accounts.spotify.com")
    SPOTIFY_API_URL = env_str("SPOTIFY_API_URL", "https://api.spotify.com/v1")
SPOTIFY_ACCOUNTS_URL = SPOTIFY_ACCOUNTS_URL.rstrip("/")
SPOTIFY_API_URL = SPOTIFY_API_URL.rstrip("/")
SPOTIFY_REDIRECT_URI = env_str(
    "SPOTIFY_REDIRECT_URI", "http://127.0.0.1:8000/auth/spotify/callback"
)
# Requests per rolling 30 s window that all workers together may send to Spotify.
SPOTIFY_RATE_LIMIT = env_int("SPOTIFY_RATE_LIMIT", 150)
# When the limiter spreads requests (a tenth of the budget per tenth of the window): "always"
# (Spotify's real window is unknown; pacing finds it with few 429s), "after-429" or "never".
SPOTIFY_RATE_SMOOTHING = env_str("SPOTIFY_RATE_SMOOTHING", "always")
if SPOTIFY_RATE_SMOOTHING not in {"always", "after-429", "never"}:
    raise ImproperlyConfigured("SPOTIFY_RATE_SMOOTHING must be always, after-429 or never")
SPOTIFY_CONCURRENCY = env_int("SPOTIFY_CONCURRENCY", 8)

SWEDIFY_TOKEN_KEYS = env_list("SWEDIFY_TOKEN_KEYS")


def _version() -> str:
    explicit = env_str("SWEDIFY_VERSION")
    if explicit:
        return explicit
    from swedify import __version__

    return __version__


SWEDIFY_VERSION = _version()

# --- Static files, i18n, security headers -------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# The listener pages speak English and Swedish (templates and Python through gettext, the
# script through the JavaScript catalog at /i18n/catalog.js). The language comes from the
# django_language cookie set by the header's switch (POST /i18n/setlang), else from
# Accept-Language, else English. Numbers and dates follow the language's formats
# (Swedish: "1 234" with a no-break space, "3 december 2026"). Messages live in locale/.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("sv", "Svenska")]
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGE_COOKIE_AGE = 60 * 60 * 24 * 365
LANGUAGE_COOKIE_SAMESITE = "Lax"
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SECURE = SESSION_COOKIE_SECURE
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

if SWEDIFY_HTTPS:
    # TLS ends at the proxy, which says so in X-Forwarded-Proto; it must set (not pass on)
    # that header, or a client could claim HTTPS for itself.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    # HAProxy and the deploy pipeline probe the slots over plain HTTP on loopback.
    SECURE_REDIRECT_EXEMPT = [r"^health$"]
    SECURE_HSTS_SECONDS = 60 * 60 * 24 * 365
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
# Joining the browsers' HSTS preload list is a decision about the whole domain, made by its
# owner on hstspreload.org, not by one application's settings (security.W021).
SILENCED_SYSTEM_CHECKS = ["security.W021"]

# The debug page masks every URL (they carry passwords), key, secret and token, in the
# settings and in the request's environment (swedify.reporting).
DEFAULT_EXCEPTION_REPORTER_FILTER = "swedify.reporting.SecretsHiddenFilter"

LOGIN_URL = "/admin/login/"

# --- Admin sign-in ------------------------------------------------------------------------

# Failed admin logins are counted in the database (django-axes' default handler), so the
# throttle holds while Redis is down. Per address and per account, each on its own: five
# failures from one address lock that address out, five on one account lock that account.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
# Behind HAProxy every peer is 127.0.0.1: count the client our own proxy names, as the
# listener-side limits do (SWEDIFY_TRUSTED_PROXIES), never an X-Forwarded-For a client wrote.
AXES_CLIENT_IP_CALLABLE = "genres.limits.client_address"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django_redis": {"level": "WARNING"},
        # django-axes announces itself at every start; a start-up error must stay one line.
        "axes.apps": {"level": "WARNING"},
        # The filesystem broker has no host, and kombu warns "No hostname was supplied" each
        # time a connection is described: noise, not a fault.
        "kombu.connection": {"level": "ERROR"},
    },
}

# --- Deployments ----------------------------------------------------------------------------
# Read by deployments/; tests override them with pytest-django's ``settings`` fixture.


# Stage key → field values that adjust deployments.pipeline.PIPELINE (``params`` merged), as
# a JSON object in the environment, e.g. {"analysis": {"params": {"window_seconds": 120}}}.
def _pipeline_overrides() -> dict[str, dict]:
    import json

    raw = env_str("SWEDIFY_PIPELINE_OVERRIDES")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as error:
        raise ImproperlyConfigured(f"SWEDIFY_PIPELINE_OVERRIDES is not JSON: {error}") from None
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ImproperlyConfigured(
            "SWEDIFY_PIPELINE_OVERRIDES must be a JSON object of stage key → object of fields"
        )
    return value


SWEDIFY_PIPELINE_OVERRIDES: dict[str, dict] = _pipeline_overrides()
# The rollback window: how long after a cutover the previous release's slots stay warm, so
# that a rollback is a switch back in milliseconds (a later one starts that release again).
# The pipeline's cleanup stops them only once this and the analysis window have both ended.
# 30 s by default: the analysis window (5 minutes) keeps them warm longer; raise it for more.
SWEDIFY_ROLLBACK_WINDOW_SECONDS = env_int("SWEDIFY_ROLLBACK_WINDOW_SECONDS", 30)
if SWEDIFY_ROLLBACK_WINDOW_SECONDS < 0:
    raise ImproperlyConfigured("SWEDIFY_ROLLBACK_WINDOW_SECONDS must be 0 or more seconds")
# A slot answering "degraded" (e.g. Redis down) passes the deploy health gate.
SWEDIFY_HEALTH_GATE_ACCEPTS_DEGRADED = True
# A rollback that has to start the old release again gives it this many health tries.
SWEDIFY_ROLLBACK_HEALTH_ATTEMPTS = 5
SWEDIFY_ROLLBACK_HEALTH_DELAY_SECONDS = 2.0
# The database alias the detailed health probe checks.
SWEDIFY_HEALTH_DATABASE_ALIAS = "default"

# --- Deploy agent ---------------------------------------------------------------------------
# Every app host runs a Celery worker of its own, `celery -A swedify worker -Q deploy.<host>`,
# whose tasks (deployments.agent) fetch a release, build its virtualenv and start, stop and
# probe that host's slots. The control side sends them to that queue and waits for the answer
# with a deadline.

# Set on an app host only: its address (or name). Its agent's queue is deploy.<host>, its slots
# listen on this address, and a task sent to another host's queue by mistake is refused.
SWEDIFY_AGENT_HOST = env_str("SWEDIFY_AGENT_HOST")
# Where agents download release archives: a web process on the control machine (the one with
# the git checkout that runs the pipeline), reachable from every app host.
SWEDIFY_CONTROL_URL = env_str("SWEDIFY_CONTROL_URL", "http://127.0.0.1:8000").rstrip("/")
# Seeds each release's virtualenv with the agent's own packages, so that only requirements the
# agent lacks (or pins it differs on) are installed: for tests and single-machine trials, where
# a full install from the package index would cost a minute per release.
SWEDIFY_AGENT_VENV_SEED = env_bool("SWEDIFY_AGENT_VENV_SEED", False)

# Agents on one machine keep data folders of their own but must share the control side's
# filesystem broker (and result) folder.
_SHARED_BROKER_DIR = env_str("SWEDIFY_BROKER_DIR")
if _SHARED_BROKER_DIR and CELERY_BROKER_URL.startswith("filesystem://"):
    BROKER_DIR = Path(_SHARED_BROKER_DIR)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        **CELERY_BROKER_TRANSPORT_OPTIONS,
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
    }


def _agent_result_backend() -> str:
    """Only the agent tasks keep results (``ignore_result=False`` on them; every other task
    still ignores its result). The backend follows the broker so that no new server or table
    is needed: the broker's Redis (or REDIS_URL) where there is one, results expiring on their
    own; ``rpc://`` on RabbitMQ, where results travel back as messages to the one caller that
    waits for them; files next to the filesystem broker's, single-machine like that broker
    (written atomically: a waiting reader never sees half a result). django-celery-results was
    not chosen: a dependency and a table polled for every answer, for what the broker's own
    server already does."""
    explicit = env_str("CELERY_RESULT_BACKEND")
    if explicit:
        return explicit
    if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        return CELERY_BROKER_URL
    if REDIS_URL:
        return REDIS_URL
    if CELERY_BROKER_URL.startswith("filesystem://"):
        # The folder is made by the backend when first used.
        return f"deployments.agent:AtomicFilesystemBackend+file://{BROKER_DIR / 'results'}"
    return "rpc://"


CELERY_RESULT_BACKEND = _agent_result_backend()
# Callers read an answer within minutes and then forget it; this bounds what a caller that
# died leaves behind.
CELERY_RESULT_EXPIRES = 60 * 60
# An agent task sent without a host's queue waits in a queue no worker consumes (and expires)
# instead of running on whichever ordinary worker takes it, on the wrong machine.
CELERY_TASK_ROUTES = {"deployments.agent.*": {"queue": "deploy.unrouted"}}
# The agent's and auto-sync's tasks live outside tasks.py (autodiscovery reads only that module).
CELERY_IMPORTS = ("deployments.agent", "genres.sync_tasks")
