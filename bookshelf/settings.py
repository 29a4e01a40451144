"""Settings for the bookshelf project, read from the environment with safe local defaults."""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from inspector import conf
from inspector.conf import env_bool

BASE_DIR = Path(__file__).resolve().parent.parent


DEBUG = env_bool("DJANGO_DEBUG", True)
_LOCAL_SECRET = "local-only-insecure-secret-key-do-not-use-in-production"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", _LOCAL_SECRET)
if not DEBUG and SECRET_KEY == _LOCAL_SECRET:
    raise ImproperlyConfigured("Set DJANGO_SECRET_KEY when DJANGO_DEBUG is off.")

ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")
CSRF_TRUSTED_ORIGINS = [
    o for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o
]

# HTTPS only when DEBUG is off, unless the environment says otherwise (README, "Run in
# production"); `manage.py check --deploy` passes with the defaults and the preload opt-in.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
# Load balancers probe /healthz and Prometheus scrapes /metrics over plain HTTP on the private
# network, and neither follows a redirect to the public https:// address: answer them as is.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SESSION_COOKIE_SECURE = env_bool("DJANGO_SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("DJANGO_CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = int(
    os.environ.get("DJANGO_SECURE_HSTS_SECONDS", "0" if DEBUG else str(365 * 24 * 3600))
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
# Asks browsers' preload lists to take the domain: a commitment the operator makes, so opt-in.
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
# Behind a TLS-terminating proxy: the request header (as in request.META) that says "https",
# e.g. HTTP_X_FORWARDED_PROTO. Only when the proxy sets it and strips it from clients.
if os.environ.get("DJANGO_SECURE_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = (os.environ["DJANGO_SECURE_PROXY_SSL_HEADER"], "https")

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
    # Static files before anything else reads the request (README, "Run in production").
    "whitenoise.middleware.WhiteNoiseMiddleware",
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

# PostgreSQL from DATABASE_URL, with the options Inspector recommends (INSPECTOR_PG_PREPARE=0
# behind a transaction-pooling proxy such as PgBouncer; INSPECTOR_PG_POOL=0 to connect per
# request); else the embedded default, an SQLite file in WAL mode.
_SQLITE_FILE = os.environ.get("INSPECTOR_SQLITE_PATH", str(BASE_DIR / "db.sqlite3"))
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
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("INSPECTOR_SQLITE_TEST_PATH", _SQLITE_FILE + "-test")
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
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", BASE_DIR / "staticfiles"))
# whitenoise serves the static files from the web process. In DEBUG it finds them where they
# are and rereads them on every request (no collectstatic); otherwise it serves what
# collectstatic gathered into STATIC_ROOT, hashed names and compressed copies from the manifest
# storage, the hashed ones with a ten-year Cache-Control.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
# Files served at the site's root: /favicon.ico, which the admin's pages ask for.
WHITENOISE_ROOT = BASE_DIR / "public"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

EMAIL_BACKEND = os.environ.get(
    "DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"
)
DEFAULT_FROM_EMAIL = "orders@bookshelf.local"

# Every INSPECTOR_<KEY> environment variable sets that key (README, "Settings").
INSPECTOR = conf.settings_from_environment(
    domain="bookshelf.domain.domain",
    # One worker thread inside the web process (started by bookshelf.asgi), so async mode,
    # retries and replays work with a single command. Turn off when running run_handlers.
    embedded_worker=True,
)

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
BOOKSHELF_NOTIFY_DEFAULT = "customers@bookshelf.local"
# The demo mail gateway refuses this share of sends (0 to 1), so failed runs show up to replay.
INSPECTOR_DEMO_FAILURE_RATE = float(os.environ.get("INSPECTOR_DEMO_FAILURE_RATE", "0"))
