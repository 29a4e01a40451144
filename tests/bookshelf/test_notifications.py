"""The demo mail gateway, and the notification handler that sends through it."""

import random

import pytest

from bookshelf.models import Notification
from bookshelf.notifications import GatewayError, NotificationGateway
from inspector.models import HandlerRun

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_gateway_that_never_fails_sends_the_mail(mailoutbox):
    NotificationGateway(failure_rate=0).send(recipient="a@example.com", subject="S", body="B")
    assert [(m.to, m.subject, m.body) for m in mailoutbox] == [(["a@example.com"], "S", "B")]


def test_a_gateway_that_always_fails_sends_nothing(mailoutbox):
    with pytest.raises(GatewayError, match="INSPECTOR_DEMO_FAILURE_RATE=1"):
        NotificationGateway(failure_rate=1).send(recipient="a@example.com", subject="S", body="B")
    assert mailoutbox == []


def test_a_gateway_fails_about_its_share_of_sends(mailoutbox):
    gateway = NotificationGateway(failure_rate=0.25, rng=random.Random(42))
    failures = 0
    for _ in range(400):
        try:
            gateway.send(recipient="a@example.com", subject="S", body="B")
        except GatewayError:
            failures += 1
    assert 70 <= failures <= 130
    assert len(mailoutbox) == 400 - failures


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_a_failure_rate_outside_0_to_1_is_refused(rate):
    with pytest.raises(ValueError):
        NotificationGateway(failure_rate=rate)


def test_a_failed_send_fails_the_run_and_keeps_no_notification(
    settings, mailoutbox, add_book, place_order, advance
):
    settings.INSPECTOR_DEMO_FAILURE_RATE = 1.0
    order = advance(place_order([(add_book(), 1)]), "CONFIRMED")
    assert order.status == "CONFIRMED"  # the command stands; its handler failed
    run = HandlerRun.objects.get(handler="bookshelf.OrderNotificationHandler")
    assert run.status == "failed"
    assert run.error_type == "bookshelf.notifications.GatewayError"
    assert Notification.objects.count() == 0
    assert mailoutbox == []
