"""The hot path's lean SQL gives the database exactly what the ORM would."""

import datetime
import uuid
import zoneinfo

import pytest
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection

from inspector.models import HandlerRun, Message, RunStatus
from inspector.runtime.sql import adapters, get_by_pk, insert_rows, new_instance, update_row
from tests.warehouse.models import Book, Money, Order

pytestmark = pytest.mark.django_db

UTC_NOW = datetime.datetime(2026, 11, 23, 15, 30, 48, 29699, tzinfo=datetime.UTC)
PARIS = UTC_NOW.astimezone(zoneinfo.ZoneInfo("Europe/Paris"))
SAMPLES = [
    None,
    "",
    "text",
    RunStatus.SUCCEEDED,
    0,
    42,
    True,
    uuid.UUID("6b85ed3d-c63e-4918-a89b-dd45a67222bd"),
    "6b85ed3d-c63e-4918-a89b-dd45a67222bd",
    UTC_NOW,
    UTC_NOW.replace(microsecond=0),
    PARIS,
    {"customer_name": "Alice", "items": [{"quantity": 2}]},
    ["a", 1],
]


def _compatible(field, value):
    """Whether the ORM itself accepts the value for the field."""
    try:
        field.get_db_prep_save(value, connection)
        return True
    except (TypeError, ValueError, DjangoValidationError):
        return False


@pytest.mark.parametrize("model", [Message, HandlerRun])
def test_adapters_match_the_orm_for_every_field_and_sample(model):
    names = [f.name for f in model._meta.concrete_fields]
    compared = 0
    for field, adapt in zip(
        model._meta.concrete_fields, adapters(model, names, connection), strict=True
    ):
        for value in SAMPLES:
            if not _compatible(field, value):
                continue
            expected = field.get_db_prep_save(value, connection)
            got = adapt(value)
            if hasattr(expected, "obj"):  # psycopg's Jsonb wrapper
                expected, got = expected.obj, got.obj
            assert got == expected and type(got) is type(expected), (field.name, value)
            compared += 1
    assert compared > len(names) * 3


def test_inserted_and_updated_rows_read_back_as_written(domain):
    message_id = uuid.uuid4()
    row = new_instance(
        Message,
        {
            "id": message_id,
            "kind": "event",
            "type": "test.Thing.v1",
            "stream": "test::thing-1",
            "category": "test::thing",
            "position": 0,
            "global_position": 10_000,
            "data": {"name": "<b>Alice</b>", "n": 1},
            "metadata": {"correlation_id": str(message_id)},
            "correlation_id": message_id,
            "causation_id": None,
            "time": PARIS,
        },
    )
    insert_rows(Message, [row])
    run = new_instance(
        HandlerRun,
        {
            "message_id": message_id,
            "handler": "test.Handler",
            "message_type": "test.Thing.v1",
            "stream": "test::thing-1",
            "position": 0,
            "global_position": 10_000,
            "available_at": UTC_NOW,
            "created_at": UTC_NOW,
            "updated_at": UTC_NOW,
        },
    )
    assert run.id is not None and run.status == RunStatus.PENDING and run.attempts == 0
    assert run.raised_message_ids == [] and run.error_message == ""
    insert_rows(HandlerRun, [run])
    stored = Message.objects.get(pk=message_id)
    assert stored.time == UTC_NOW and stored.data == {"name": "<b>Alice</b>", "n": 1}
    assert stored.correlation_id == message_id and stored.causation_id is None

    changed = update_row(
        HandlerRun,
        run.pk,
        {"status": RunStatus.SUCCEEDED, "finished_at": PARIS, "raised_message_ids": ["x"]},
        where={"status": [RunStatus.PENDING, RunStatus.RUNNING], "claimed_by": ""},
    )
    assert changed == 1
    stored_run = HandlerRun.objects.get(pk=run.pk)
    assert stored_run.status == "succeeded" and stored_run.finished_at == UTC_NOW
    assert stored_run.raised_message_ids == ["x"]
    assert update_row(HandlerRun, run.pk, {"attempts": 5}, where={"status": "pending"}) == 0


def test_get_by_pk_reads_what_the_orm_reads(add_book):
    book = add_book(price=9.5)
    for key in (book.pk, str(book.pk)):
        loaded = get_by_pk(Book, key)
        orm = Book.objects.get(pk=book.pk)
        for field in Book._meta.concrete_fields:
            assert getattr(loaded, field.attname) == getattr(orm, field.attname), field.name
        assert loaded.price == Money(amount=9.5) and not loaded._state.adding
    with pytest.raises(Order.DoesNotExist):
        get_by_pk(Order, uuid.uuid4())
    with pytest.raises(DjangoValidationError):
        get_by_pk(Order, "not-a-uuid")
