"""Every `INSPECTOR` setting, with its default and what it does. A project sets only the keys
it changes (`INSPECTOR = {"domain": "shop.domain.domain"}`), or none at all; the app reads
them here and nowhere else, on every use, so `override_settings` works in tests."""

import os
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class Setting:
    default: object
    meaning: str


SETTINGS = {
    "domain": Setting(
        None,
        "Dotted path of the `Domain` the dashboard shows and workers run; needed only when "
        "a project declares more than one.",
    ),
    "event_processing": Setting(
        "sync", '"sync": handlers run right after the commit; "async": workers run them.'
    ),
    "command_processing": Setting(
        "sync", '"sync": `process()` runs the command handler; "async": a worker does.'
    ),
    "embedded_worker": Setting(
        False,
        "Run one worker thread and the store indexer inside the web process "
        "(`start_embedded_worker()` in the ASGI module); off when `run_handlers` runs.",
    ),
    "retries": Setting(3, "Attempts after the first before a failing run is dead."),
    "backoff_base": Setting(1.0, "Seconds before the first retry; doubles each time."),
    "backoff_cap": Setting(300.0, "The longest wait between two attempts, in seconds."),
    "replay_rate": Setting(
        100, "Runs per second a replay job queues or resolves (a job may set its own)."
    ),
    "metrics_token": Setting(
        None, "A bearer token that `/metrics` accepts besides a staff session (Prometheus)."
    ),
    "feed_poll_interval": Setting(
        0.05,
        "Seconds between the live feed's reads of the store when nothing pokes it (on SQLite, "
        "a fifth of it between looks at the file's commits, and a read at least every second).",
    ),
    "feed_buffer": Setting(
        1000,
        "Fragments queued per websocket client before it falls behind and catches up from "
        "the store.",
    ),
}

PROCESSING_MODES = ("sync", "async")


def setting(name):
    """The project's value of one `INSPECTOR` setting, or its default."""
    return getattr(settings, "INSPECTOR", {}).get(name, SETTINGS[name].default)


def configuration_errors():
    """What is wrong with the project's `INSPECTOR` setting, one sentence each."""
    configured = getattr(settings, "INSPECTOR", {})
    if not isinstance(configured, dict):
        return [f"INSPECTOR must be a dict, not {type(configured).__name__}."]
    errors = [
        f"INSPECTOR[{key!r}] is not a setting of Inspector; known: {', '.join(SETTINGS)}."
        for key in configured
        if key not in SETTINGS
    ]
    for key in ("event_processing", "command_processing"):
        if key in configured and configured[key] not in PROCESSING_MODES:
            errors.append(f'INSPECTOR[{key!r}] must be "sync" or "async", not {configured[key]!r}.')
    return errors


def settings_from_environment(environ=None, **defaults):
    """An `INSPECTOR` dict from `INSPECTOR_<KEY>` environment variables (`INSPECTOR_RETRIES=5`),
    on top of the project's own `defaults`; keys absent from both are left to Inspector's.

    For a settings module: `INSPECTOR = settings_from_environment(domain="shop.domain.domain")`.
    """
    environ = os.environ if environ is None else environ
    found = dict(defaults)
    for name, spec in SETTINGS.items():
        raw = environ.get(f"INSPECTOR_{name.upper()}")
        if raw is not None:
            found[name] = _parsed(name, raw, spec.default)
    return found


def env_bool(name, default=False, environ=None):
    """An on/off environment variable: 1, true, yes or on (any case) is on."""
    raw = (os.environ if environ is None else environ).get(name)
    return default if raw is None else _truthy(raw)


def _truthy(raw):
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _parsed(name, raw, default):
    try:
        if isinstance(default, bool):
            return _truthy(raw)
        if isinstance(default, int | float):
            return type(default)(raw)
    except ValueError:
        kind = "a whole number" if isinstance(default, int) else "a number"
        raise ImproperlyConfigured(f"INSPECTOR_{name.upper()}={raw!r}: {name} is {kind}") from None
    return raw


# Recommended DATABASES entries ------------------------------------------------------------

# WAL lets readers run beside the writer; NORMAL is durable at every commit in WAL mode
# except across a power cut; 64 MB of page cache per connection instead of 2.
SQLITE_INIT_COMMAND = (
    "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;PRAGMA foreign_keys=ON;"
    "PRAGMA cache_size=-65536;"
)


def sqlite_database(path, *, timeout=30):
    """A `DATABASES` entry for an SQLite file as Inspector runs best on it: its backend, whose
    writers queue for the write lock (and checkpoint the log off the request path), and
    IMMEDIATE transactions, which take that lock up front instead of failing mid-way."""
    return {
        "ENGINE": "inspector.contrib.sqlite",
        "NAME": str(path),
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": timeout,
            "init_command": SQLITE_INIT_COMMAND,
        },
    }


def postgresql_options(*, prepare=True, pool=True):
    """`OPTIONS` for a PostgreSQL entry: parameters bound on the server and, with `prepare`,
    statements run often prepared once per connection (turn it off behind a transaction-pooling
    proxy such as PgBouncer); with `pool`, a pool per process (psycopg_pool), so a request or a
    websocket read borrows a connection instead of opening one.

    With the pool, set `CONN_HEALTH_CHECKS = True` in the entry too: Django then has the pool
    check a connection before lending it (`ConnectionPool.check_connection`), so that the first
    request after a database restart gets a working one instead of one the server cut (a 500).
    """
    options = {"server_side_binding": True}
    if prepare:
        options["prepare_threshold"] = 5
    if pool:
        options["pool"] = {"min_size": 2, "max_size": 20}
    return options
