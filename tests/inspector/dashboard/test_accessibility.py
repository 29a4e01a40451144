"""The inspector in its own layout (inspector/layout.html, as a project that does not restyle
it shows it) and the admin's login page in Chromium on daphne: no WCAG 2 A/AA violation
(axe-core), no console error or failed request on any page."""

import pytest
from django.utils import timezone

from inspector.models import Message, ReplayJob
from tests.browsers import CHROMIUM, accessibility_violations
from tests.inspector.chromium import inspector_in_chromium

pytestmark = pytest.mark.django_db(transaction=True)


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
    violations, axe = [], Axe()
    with inspector_in_chromium(tmp_path, monkeypatch) as (base, page, problems):
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
        visited = len(page.context.pages)
    assert visited == 1
    assert violations == []
    assert problems.unexpected() == []
