"""Test settings: the bookshelf settings plus a probe app whose handlers record what they saw."""

import os
import tempfile

from bookshelf.settings import *  # noqa: F403
from bookshelf.settings import DATABASES, INSPECTOR, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.probe"]
INSPECTOR = {**INSPECTOR, "embedded_worker": False}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # One test database file per test process, so parallel runs never share one.
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"inspector-test-{os.getpid()}.sqlite3")
    }

# The in-memory layer unless a test asks for Redis (tests/inspector/test_feed.py does).
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
