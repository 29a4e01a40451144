"""The INSPECTOR settings: defaults without any setting, errors for wrong keys, the README."""

import re
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from inspector import conf, handle
from tests.warehouse.events import OrderShipped

README = Path(__file__).resolve().parents[2] / "README.md"


def test_a_project_without_an_inspector_setting_runs_on_the_defaults(settings, extra_handlers):
    del settings.INSPECTOR
    assert {name: conf.setting(name) for name in conf.SETTINGS} == {
        "domain": None,
        "event_processing": "sync",
        "command_processing": "sync",
        "embedded_worker": False,
        "retries": 3,
        "backoff_base": 1.0,
        "backoff_cap": 300.0,
        "replay_rate": 100,
        "metrics_token": None,
        "feed_poll_interval": 0.05,
        "feed_buffer": 1000,
    }

    class Handler:
        @handle(OrderShipped)
        def on_shipped(self, event):
            pass

    spec = extra_handlers(Handler, stream_category="warehouse::order")._spec
    assert (spec.retries, spec.backoff_base, spec.backoff_cap) == (3, 1.0, 300.0)


def test_a_key_the_project_sets_wins_over_its_default(settings):
    settings.INSPECTOR = {"retries": 7}
    assert conf.setting("retries") == 7
    assert conf.setting("backoff_cap") == 300.0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"retry": 2}, "INSPECTOR['retry'] is not a setting of Inspector"),
        ({"event_processing": "later"}, "INSPECTOR['event_processing'] must be \"sync\""),
        (["retries"], "INSPECTOR must be a dict"),
    ],
)
def test_manage_check_names_a_wrong_setting(settings, value, message):
    settings.INSPECTOR = value
    with pytest.raises(SystemCheckError, match=re.escape(message)):
        call_command("check")


def test_the_readme_lists_every_setting_with_its_default():
    rows = {}
    for line in README.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"`[a-z_]+`", cells[1]):
            rows[cells[1].strip("`")] = re.match(r"`([^`]*)`", cells[2]).group(1)
    expected = {
        name: '"' + s.default + '"' if isinstance(s.default, str) else repr(s.default)
        for name, s in conf.SETTINGS.items()
    }
    assert rows == expected


def test_settings_come_from_inspector_environment_variables_over_the_project_defaults():
    environ = {
        "INSPECTOR_RETRIES": "5",
        "INSPECTOR_BACKOFF_CAP": "2.5",
        "INSPECTOR_EMBEDDED_WORKER": "off",
        "INSPECTOR_EVENT_PROCESSING": "async",
        "INSPECTOR_METRICS_TOKEN": "s3cret",
        "INSPECTOR_UNRELATED": "ignored",
    }
    found = conf.settings_from_environment(
        environ, domain="shop.domain.domain", embedded_worker=True
    )
    assert found == {
        "domain": "shop.domain.domain",
        "retries": 5,
        "backoff_cap": 2.5,
        "embedded_worker": False,
        "event_processing": "async",
        "metrics_token": "s3cret",
    }
    assert conf.settings_from_environment({}, embedded_worker=True) == {"embedded_worker": True}


def test_a_malformed_environment_variable_names_itself():
    message = "INSPECTOR_RETRIES='many': retries is a whole number"
    with pytest.raises(ImproperlyConfigured, match=message):
        conf.settings_from_environment({"INSPECTOR_RETRIES": "many"})


def test_the_recommended_sqlite_database_uses_the_queueing_backend_in_wal_mode(tmp_path):
    entry = conf.sqlite_database(tmp_path / "app.sqlite3")
    assert entry["ENGINE"] == "inspector.contrib.sqlite"
    assert entry["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;" in entry["OPTIONS"]["init_command"]
    assert conf.postgresql_options(prepare=False, pool=False) == {"server_side_binding": True}
