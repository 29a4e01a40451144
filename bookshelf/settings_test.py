"""Test settings for the bookshelf's own tests (tests/bookshelf, tests/browser): the bookshelf
settings with no worker thread, a fast hasher and a test database per process. The inspector's
tests run on their own settings and domain (tests/settings.py, the warehouse)."""

import os
import tempfile

from bookshelf.settings import *  # noqa: F403
from bookshelf.settings import DATABASES, INSPECTOR, env_bool

# No worker thread in the test process; a daphne started by a browser test turns it on.
INSPECTOR = {**INSPECTOR, "embedded_worker": env_bool("INSPECTOR_EMBEDDED_WORKER", False)}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if "sqlite" in DATABASES["default"]["ENGINE"]:  # Django's backend or inspector.contrib.sqlite
    # One test database file per test process, so parallel runs never share one.
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"inspector-test-{os.getpid()}.sqlite3")
    }

# The in-memory layer, even when REDIS_URL is set (scripts/test-all starts Redis).
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
