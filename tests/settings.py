"""Settings for the inspector's own tests, on a domain of their own: the warehouse.

`pytest tests/inspector tests/test_install.py --ds=tests.settings`. The database is chosen as
the demo project chooses it: DATABASE_URL (PostgreSQL), else the embedded SQLite file; the
worker and shell processes the tests start read the same variables."""

import os
import tempfile
from pathlib import Path

import dj_database_url

from inspector import conf
from inspector.conf import env_bool

BASE_DIR = Path(__file__).resolve().parent.parent


DEBUG = False
SECRET_KEY = "inspector-tests-only-insecure-secret-key"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

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
    "tests.warehouse",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "tests.urls"
ASGI_APPLICATION = "tests.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,  # the inspector's own templates, its layout included
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# As in the demo project: PostgreSQL from DATABASE_URL with the options Inspector recommends,
# else an SQLite file; not the demo's db.sqlite3, so `manage.py` on these settings never
# touches the demo's data.
_SQLITE_FILE = os.environ.get("INSPECTOR_SQLITE_PATH", str(BASE_DIR / "db.sqlite3-warehouse"))
if os.environ.get("DATABASE_URL"):
    # Health checks: the pool checks a connection before it lends one (conf.postgresql_options).
    DATABASES = {
        "default": dj_database_url.parse(
            os.environ["DATABASE_URL"], conn_max_age=0, conn_health_checks=True
        )
    }
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            conf.postgresql_options(
                prepare=env_bool("INSPECTOR_PG_PREPARE", True),
                pool=env_bool("INSPECTOR_PG_POOL", True),
            )
        )
else:
    DATABASES = {"default": conf.sqlite_database(_SQLITE_FILE)}
    # One test database file per test process, so parallel runs never share one.
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"inspector-test-{os.getpid()}.sqlite3")
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The in-memory layer. A process a test starts may ask for Redis (INSPECTOR_REDIS_CHANNELS=1
# with REDIS_URL, as tests/inspector/dashboard/test_feed.py does); the test switches its own
# process over with override_settings.
REDIS_URL = os.environ.get("REDIS_URL")
if REDIS_URL and env_bool("INSPECTOR_REDIS_CHANNELS", False):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# whitenoise serves the static files where they are (the tests run no collectstatic) and
# /favicon.ico, so that pages in a browser have their CSS and JS (tests/inspector's axe check).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
WHITENOISE_ROOT = BASE_DIR / "public"

EMAIL_BACKEND = os.environ.get(
    "DJANGO_EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend"
)
DEFAULT_FROM_EMAIL = "orders@warehouse.local"

# INSPECTOR_<KEY> environment variables set keys, as for the demo (a worker process a test
# starts gets INSPECTOR_EVENT_PROCESSING=async, say); no worker thread in the test process.
INSPECTOR = conf.settings_from_environment(domain="tests.warehouse.domain.domain")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "inspector": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # psycopg's pool warns of every connection it drops and every reconnection attempt
        # (a dozen lines a restart, one every few seconds while the database is away), which
        # Inspector already says once each way ("The database went away", "... is back").
        "psycopg.pool": {"level": "ERROR"},
    },
}

# The warehouse's mail gateway refuses every send while this is on (tests switch it).
WAREHOUSE_MAIL_GATEWAY_DOWN = False
