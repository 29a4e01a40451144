"""The inspector in its own layout (inspector/layout.html, as a project that does not restyle
it shows it) and the admin's login page in Chromium on daphne: no WCAG 2 A/AA violation
(axe-core), no console error or failed request on any page."""

from pathlib import Path

import pytest
from django.utils import timezone

from inspector.models import Message, ReplayJob
from tests.browsers import CHROMIUM, CHROMIUM_ARGS, BrowserProblems, accessibility_violations
from tests.inspector.conftest import subprocess_env
from tests.sockets import daphne

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[3]


def inspector_pages(message, job):
    """A page of each kind, about the message's stream and flow."""
    return [
        "/inspector/",
        f"/inspector/messages/{message.id}/",
        f"/inspector/flows/{message.correlation_id}/",
        "/inspector/streams/",
        f"/inspector/streams/category/{message.category}/",
        f"/inspector/streams/stream/{message.stream}/",
        "/inspector/handlers/",
        "/inspector/map/",
        f"/inspector/search/?type={message.type}",
        "/inspector/jobs/",
        f"/inspector/jobs/{job.pk}/",
    ]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium (make test installs it)")
def test_the_inspector_pages_and_the_admin_login_are_accessible_and_clean(
    add_book, django_user_model, tmp_path, monkeypatch
):
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import sync_playwright

    add_book()
    message = Message.objects.order_by("global_position").first()
    now = timezone.now()  # a job that has ended: its page no longer polls
    job = ReplayJob.objects.create(
        action="replay",
        status="finished",
        covers="every dead run",
        created_at=now,
        finished_at=now,
        next_step_at=now,
        updated_at=now,
        rate=100,
    )
    django_user_model.objects.create_superuser("ada", password="correct horse battery")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop in this thread
    problems, violations, axe = BrowserProblems(), [], Axe()
    env = subprocess_env(INSPECTOR_EMBEDDED_WORKER="0")
    log = tmp_path / "daphne.log"
    with (
        daphne("tests.asgi:application", env=env, log=log, cwd=ROOT) as (port, _server),
        sync_playwright() as playwright,
    ):
        base = f"http://127.0.0.1:{port}"
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1366, "height": 860})
            context.set_default_timeout(10_000)
            context.on("page", problems.watch)
            page = context.new_page()

            page.goto(f"{base}/admin/login/?next=/inspector/")
            violations += accessibility_violations(axe, page, "admin login")
            page.get_by_label("Username").fill("ada")
            page.get_by_label("Password").fill("correct horse battery")
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(f"{base}/inspector/")

            for path in inspector_pages(message, job):
                response = page.goto(base + path)
                assert response.status == 200, path
                page.wait_for_load_state("networkidle")
                violations += accessibility_violations(axe, page, path)
            visited = len(context.pages)
        finally:
            browser.close()
    assert visited == 1
    assert violations == []
    assert problems.unexpected() == []
