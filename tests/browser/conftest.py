"""Browser fixtures: Debian's Chromium driven by Playwright against daphne (so the pages'
websockets connect), a guard that fails a test on any console error or failed request, and a
screenshot of every failure."""

import os
import re
from pathlib import Path

import pytest
from django.db import connections

from tests.bookshelf.conftest import add_book, domain  # noqa: F401  (the bookshelf's fixtures)
from tests.browsers import CHROMIUM, CHROMIUM_ARGS, BrowserProblems
from tests.processes import on_test_database
from tests.sockets import daphne

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can tell that the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def process_environment(**extra):
    """The environment of a bookshelf process on the test database (daphne, a demo)."""
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="bookshelf.settings_test",
        DJANGO_EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
    )
    return on_test_database(env) | extra


@pytest.fixture
def server_env():
    """daphne's extra variables; a module overrides this fixture to change them. By default
    no worker thread, like the test process: handlers run in the request (sync)."""
    return {"INSPECTOR_EMBEDDED_WORKER": "0"}


@pytest.fixture
def server_url(transactional_db, tmp_path, server_env):
    """The base URL of a daphne serving this test's database (websockets included)."""
    env, log = process_environment(**server_env), tmp_path / "daphne.log"
    with daphne("bookshelf.asgi:application", env=env, log=log, cwd=ROOT) as (port, _server):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def browser_problems():
    """The guard of this test's pages (see BrowserProblems); `expect()` the ones it provokes."""
    return BrowserProblems()


@pytest.fixture
def browser_context(request, server_url, browser_problems, monkeypatch):
    """A Chromium context whose every page is guarded; on failure each page's screenshot
    goes to tests/artifacts/, and any console error or failed request fails the test."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (make test installs it)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls
    # (arranging data, checking rows) are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1366, "height": 860})
        context.set_default_timeout(10_000)
        context.on("page", browser_problems.watch)
        try:
            yield context
            problems = browser_problems.unexpected()  # before closing: no teardown noise
        finally:
            report = getattr(request.node, "report_call", None)
            if report is not None and report.failed:
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                stem = re.sub(r"[^\w.-]+", "_", request.node.nodeid)
                for number, page in enumerate(context.pages):
                    page.screenshot(path=str(ARTIFACTS / f"{stem}-{number}.png"), full_page=True)
            browser.close()
            # ORM calls made while Playwright ran opened connections of their own; left open,
            # PostgreSQL refuses to drop the test database at the end of the session.
            connections.close_all()
    if problems:
        pytest.fail(
            f"{len(problems)} browser problem(s):\n" + "\n".join(f"- {p}" for p in problems),
            pytrace=False,
        )


@pytest.fixture
def page(browser_context, server_url):
    """A fresh Chromium page on daphne; `page.base_url` is the server's address."""
    page = browser_context.new_page()
    page.base_url = server_url
    return page


@pytest.fixture
def log_in(django_user_model):
    """Log in through the admin's login page as a new superuser; land on `next`."""

    def log_in(page, next_path="/"):
        django_user_model.objects.create_superuser("ada", password="correct horse battery")
        page.goto(f"{page.base_url}/admin/login/?next={next_path}")
        page.get_by_label("Username").fill("ada")
        page.get_by_label("Password").fill("correct horse battery")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{page.base_url}{next_path}")

    return log_in
