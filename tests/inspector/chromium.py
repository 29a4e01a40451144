"""The inspector on its own (tests.asgi, no bookshelf) in daphne, seen through Chromium: for
the inspector's tests that need a real browser (accessibility, console, live pages)."""

import contextlib
from pathlib import Path

from tests.browsers import CHROMIUM, CHROMIUM_ARGS, BrowserProblems
from tests.inspector.conftest import subprocess_env
from tests.sockets import daphne

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def inspector_in_chromium(tmp_path, monkeypatch):
    """daphne on the test database (no worker thread) and a Chromium page whose console and
    requests are guarded; yields (base URL, page, BrowserProblems). The caller asserts
    `problems.unexpected() == []` after the block, when the browser is closed."""
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop in this thread
    problems = BrowserProblems()
    env = subprocess_env(INSPECTOR_EMBEDDED_WORKER="0")
    log = tmp_path / "daphne.log"
    with (
        daphne("tests.asgi:application", env=env, log=log, cwd=ROOT) as (port, _server),
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1366, "height": 860})
            context.set_default_timeout(10_000)
            context.on("page", problems.watch)
            yield f"http://127.0.0.1:{port}", context.new_page(), problems
        finally:
            browser.close()


def log_in(page, base, username, password, next_path):
    """Log in through the admin's login page and land on `next_path`."""
    page.goto(f"{base}/admin/login/?next={next_path}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}{next_path}*")
