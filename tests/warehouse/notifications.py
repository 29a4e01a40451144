"""The mail gateway the notification handler sends through; a test can take it down."""

from django.conf import settings
from django.core.mail import send_mail

DEFAULT_RECIPIENT = "customers@warehouse.local"


class GatewayError(Exception):
    """The mail gateway did not accept the message; the handler run fails and can be replayed."""


def send(*, recipient, subject, body):
    """Send one email, or refuse it while `WAREHOUSE_MAIL_GATEWAY_DOWN` is set."""
    if getattr(settings, "WAREHOUSE_MAIL_GATEWAY_DOWN", False):
        raise GatewayError(
            f"Mail gateway refused the message to {recipient} (WAREHOUSE_MAIL_GATEWAY_DOWN)"
        )
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [recipient])
