"""Settings for the bookshelf project, read from the environment with safe local defaults."""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DEBUG = env_bool("DJANGO_DEBUG", True)
_LOCAL_SECRET = "local-only-insecure-secret-key-do-not-use-in-production"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", _LOCAL_SECRET)
if not DEBUG and SECRET_KEY == _LOCAL_SECRET:
    raise ImproperlyConfigured("Set DJANGO_SECRET_KEY when DJANGO_DEBUG is off.")

ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")
CSRF_TRUSTED_ORIGINS = [
    o for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o
]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "inspector",
    "bookshelf",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "bookshelf.urls"
ASGI_APPLICATION = "bookshelf.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# The embedded default is an SQLite file in WAL mode; IMMEDIATE transactions take the write
# lock up front, so concurrent writers queue on busy_timeout instead of failing mid-way.
_SQLITE_FILE = os.environ.get("INSPECTOR_SQLITE_PATH", str(BASE_DIR / "db.sqlite3"))
if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=0)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Parameters bound on the server, and statements run often prepared once per
        # connection: PostgreSQL then skips parsing and planning the hot path's statements.
        # Set INSPECTOR_PG_PREPARE=0 behind a transaction-pooling proxy such as PgBouncer.
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            {"server_side_binding": True}
            | ({"prepare_threshold": 5} if env_bool("INSPECTOR_PG_PREPARE", True) else {})
            # A pool per process: a request or a websocket read borrows a connection instead
            # of opening one (8 ms here), and prepared statements outlive the request.
            | (
                {"pool": {"min_size": 2, "max_size": 20}}
                if env_bool("INSPECTOR_PG_POOL", True)
                else {}
            )
        )
else:
    DATABASES = {
        "default": {
            "ENGINE": "inspector.contrib.sqlite",  # writers queue instead of sleeping
            "NAME": _SQLITE_FILE,
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": (
                    "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;PRAGMA foreign_keys=ON;"
                    "PRAGMA cache_size=-65536;"  # 64 MB of pages per connection, not 2
                ),
            },
            "TEST": {"NAME": os.environ.get("INSPECTOR_SQLITE_TEST_PATH", _SQLITE_FILE + "-test")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL")
if REDIS_URL and env_bool("INSPECTOR_REDIS_CHANNELS", True):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"  # customers; staff-only pages send people to the admin login
LOGIN_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

EMAIL_BACKEND = os.environ.get(
    "DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"
)
DEFAULT_FROM_EMAIL = "orders@bookshelf.local"

INSPECTOR = {
    "domain": "bookshelf.domain.domain",
    "event_processing": os.environ.get("INSPECTOR_EVENT_PROCESSING", "sync"),
    "command_processing": os.environ.get("INSPECTOR_COMMAND_PROCESSING", "sync"),
    # One worker thread inside the web process (started by bookshelf.asgi), so async mode,
    # retries and replays work with a single command. Turn off when running run_handlers.
    "embedded_worker": env_bool("INSPECTOR_EMBEDDED_WORKER", True),
    "retries": int(os.environ.get("INSPECTOR_RETRIES", "3")),
    "backoff_base": float(os.environ.get("INSPECTOR_BACKOFF_BASE", "1.0")),
    "backoff_cap": float(os.environ.get("INSPECTOR_BACKOFF_CAP", "300")),
    # /metrics answers a staff session, or this bearer token (for Prometheus).
    "metrics_token": os.environ.get("INSPECTOR_METRICS_TOKEN"),
    "feed_poll_interval": float(os.environ.get("INSPECTOR_FEED_POLL_INTERVAL", "0.05")),
    "feed_buffer": int(os.environ.get("INSPECTOR_FEED_BUFFER", "1000")),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {"inspector": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}
BOOKSHELF_NOTIFY_DEFAULT = "customers@bookshelf.local"
# The demo mail gateway refuses this share of sends (0 to 1), so failed runs show up to replay.
INSPECTOR_DEMO_FAILURE_RATE = float(os.environ.get("INSPECTOR_DEMO_FAILURE_RATE", "0"))
