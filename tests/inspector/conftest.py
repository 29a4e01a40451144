import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def spawn_worker(tmp_path):
    """Start `manage.py run_handlers` processes on the test database; stop them afterwards."""
    started = []

    def spawn(*args):
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="bookshelf.settings_test")
        name = connection.settings_dict["NAME"]
        if connection.vendor == "sqlite":
            env["INSPECTOR_SQLITE_PATH"] = str(name)
            env.pop("DATABASE_URL", None)
        else:
            base = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
            env["DATABASE_URL"] = f"{base}/{name}"
        log = tmp_path / f"worker-{len(started)}.log"
        with open(log, "w") as out:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "run_handlers", *args],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        process.log = log
        started.append(process)
        return process

    yield spawn
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)
