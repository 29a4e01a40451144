"""The gateway that sends customer emails; in the demo it fails a configurable share of sends."""

import random

from django.conf import settings
from django.core.mail import send_mail


class GatewayError(Exception):
    """The mail gateway did not accept the message; the handler run fails and can be replayed."""


class NotificationGateway:
    """Sends one email, or refuses it `failure_rate` of the time (0 never, 1 always)."""

    def __init__(self, *, failure_rate=0.0, rng=None):
        if not 0 <= failure_rate <= 1:
            raise ValueError(f"failure_rate must be between 0 and 1, not {failure_rate!r}")
        self.failure_rate = failure_rate
        self.rng = rng or random.Random()

    def send(self, *, recipient, subject, body):
        if self.failure_rate and self.rng.random() < self.failure_rate:
            raise GatewayError(
                f"Mail gateway refused the message to {recipient} "
                f"(simulated outage, INSPECTOR_DEMO_FAILURE_RATE={self.failure_rate:g})"
            )
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [recipient])


def gateway():
    """The gateway as configured now: read per send, so a changed setting applies at once."""
    return NotificationGateway(failure_rate=settings.INSPECTOR_DEMO_FAILURE_RATE)
