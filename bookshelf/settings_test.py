"""Test settings: the bookshelf settings plus a probe app whose handlers record what they saw."""

import os
import tempfile

from bookshelf.settings import *  # noqa: F403
from bookshelf.settings import DATABASES, INSPECTOR, INSTALLED_APPS, env_bool

INSTALLED_APPS = [*INSTALLED_APPS, "tests.probe"]
# No worker thread in the test process; a daphne started by a browser test turns it on.
INSPECTOR = {**INSPECTOR, "embedded_worker": env_bool("INSPECTOR_EMBEDDED_WORKER", False)}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # One test database file per test process, so parallel runs never share one.
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"inspector-test-{os.getpid()}.sqlite3")
    }

# The in-memory layer unless a test asks for Redis (tests/inspector/test_feed.py does).
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
