"""Browser fixtures: Debian's Chromium driven by Playwright, and a screenshot of every failure."""

import re
from pathlib import Path

import pytest
from django.db import connections

from tests.bookshelf.conftest import add_book, domain  # noqa: F401  (the bookshelf's fixtures)

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can tell that the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(request, live_server, monkeypatch):
    """A fresh Chromium page; on failure its screenshot goes to tests/artifacts/."""
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
        page = context.new_page()
        page.base_url = live_server.url
        try:
            yield page
        finally:
            report = getattr(request.node, "report_call", None)
            if report is not None and report.failed:
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                name = re.sub(r"[^\w.-]+", "_", request.node.nodeid)
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
            browser.close()
            # ORM calls made while Playwright ran opened connections of their own; left open,
            # PostgreSQL refuses to drop the test database at the end of the session.
            connections.close_all()


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
