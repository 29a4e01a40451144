"""Run a shop form's command at most once, and say what it raised."""

import uuid
from dataclasses import dataclass

from django.db import connection, transaction

from bookshelf.domain import domain
from inspector.exceptions import DomainError
from inspector.models import HandlerRun, Message, MessageKind, RunStatus
from inspector.runtime.names import short_type


class DuplicateSubmission(DomainError):
    """The form was submitted before: its command already ran, so this one is refused."""

    def __init__(self, message="This form was already submitted, so nothing was done again."):
        super().__init__(message)


def already_submitted(token):
    """Whether a command ran for the form submission `token` (its correlation id)."""
    return Message.objects.filter(correlation_id=token).exists()


@dataclass(frozen=True)
class Raised:
    """One event the command raised, and how its handler runs stand."""

    message_id: uuid.UUID
    name: str
    runs: int
    failed: int
    pending: int


@dataclass(frozen=True)
class Receipt:
    """What a submitted command did: its stored message, its result and the events it raised."""

    command_id: uuid.UUID
    command_name: str
    result: object
    raised: tuple[Raised, ...]

    @property
    def failed(self):
        return sum(event.failed for event in self.raised)


def submit(command, *, token):
    """Process `command` for the form submission `token`, unless that submission already ran.

    The token becomes the correlation id of everything the command causes, so a second
    submission of the same form finds the first in the store and writes nothing.
    """
    token = uuid.UUID(str(token))
    with transaction.atomic():
        _lock_submission(token)
        if already_submitted(token):
            raise DuplicateSubmission()
        result = domain.process(command, correlation_id=token)
    # Sync handlers ran when the block above committed, so the receipt sees their outcome.
    return receipt_for(token, result)


def _lock_submission(token):
    """Make concurrent submissions of one token wait for each other until commit."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [token.int & (2**63 - 1)])
    # SQLite: the IMMEDIATE transaction already holds the database's write lock.


def receipt_for(token, result=None):
    """The receipt of the command stored under correlation id `token`."""
    command = Message.objects.get(
        correlation_id=token, kind=MessageKind.COMMAND, causation_id__isnull=True
    )
    events = list(
        Message.objects.filter(correlation_id=token, causation_id=command.id)
        .order_by("global_position")
        .only("id", "type")
    )
    statuses = {}
    for message_id, status in HandlerRun.objects.filter(message__in=events).values_list(
        "message_id", "status"
    ):
        statuses.setdefault(message_id, []).append(status)
    raised = tuple(
        Raised(
            message_id=event.id,
            name=message_name(event.type),
            runs=len(statuses.get(event.id, ())),
            failed=sum(s in (RunStatus.FAILED, RunStatus.DEAD) for s in statuses.get(event.id, ())),
            pending=sum(
                s in (RunStatus.PENDING, RunStatus.RUNNING) for s in statuses.get(event.id, ())
            ),
        )
        for event in events
    )
    return Receipt(
        command_id=command.id,
        command_name=message_name(command.type),
        result=result,
        raised=raised,
    )


def message_name(type_name):
    """`bookshelf.OrderShipped.v1` → `OrderShipped` for a type the domain registers; any
    other type as it is."""
    try:
        domain.message_class(type_name)
    except KeyError:
        return type_name
    return short_type(type_name)
