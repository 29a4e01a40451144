"""Every `INSPECTOR` setting, with its default and what it does. A project sets only the keys
it changes (`INSPECTOR = {"domain": "shop.domain.domain"}`), or none at all; the app reads
them here and nowhere else, on every use, so `override_settings` works in tests."""

from dataclasses import dataclass

from django.conf import settings


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
    "metrics_token": Setting(
        None, "A bearer token that `/metrics` accepts besides a staff session (Prometheus)."
    ),
    "feed_poll_interval": Setting(
        0.05, "Seconds between the live feed's reads of the store when nothing pokes it."
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
