"""Edit and replay on the warehouse: a run that can never succeed as stored runs again with a
corrected payload; the stored message is never rewritten."""

import pytest
from django.utils import timezone

from inspector.exceptions import ValidationError
from inspector.models import HandlerRun, HandlerRunReplay, Message
from inspector.services import (
    RunNotReplayable,
    handler_run_edit_replay,
    handler_run_replay,
    payload_diff,
)
from tests.inspector.edits import UNKNOWN_BOOK, corrected, drain, stored
from tests.warehouse.commands import AdjustStock
from tests.warehouse.models import Inventory

pytestmark = pytest.mark.django_db(transaction=True)

STOCK_ADJUSTED = "warehouse.StockAdjusted.v1"


def test_a_dead_run_replayed_with_an_edited_payload_runs_with_it_and_succeeds(
    shipped_unknown_book, stocked_book, admin_user
):
    run = shipped_unknown_book
    assert f"No inventory for book {UNKNOWN_BOOK}" in run.error_message
    before = stored(run.message_id)

    handler_run_edit_replay(
        run=run, data=corrected(run, stocked_book), user=admin_user, reason="typo in the book id"
    )
    run.refresh_from_db()
    assert (run.status, run.edit_id) == ("pending", HandlerRunReplay.objects.get(run=run).pk)
    assert drain() == 1

    run.refresh_from_db()
    assert (run.status, run.attempts) == ("succeeded", 5)
    assert Inventory.objects.get(book=stocked_book).in_stock == 8
    assert stored(run.message_id) == before  # the store is never rewritten

    replay = HandlerRunReplay.objects.get(run=run)
    assert (replay.action, replay.user, replay.reason) == (
        "replay",
        admin_user,
        "typo in the book id",
    )
    assert (replay.previous_status, replay.attempts_before) == ("dead", 4)
    assert replay.original_data["items"] == [{"book_id": UNKNOWN_BOOK, "quantity": 2}]
    assert replay.edited_data["items"] == [{"book_id": str(stocked_book.id), "quantity": 2}]
    assert abs((timezone.now() - replay.at).total_seconds()) < 60
    assert [
        (c.field, c.original, c.edited)
        for c in payload_diff(replay.original_data, replay.edited_data)
    ] == [
        (
            "items",
            [{"book_id": UNKNOWN_BOOK, "quantity": 2}],
            [{"book_id": str(stocked_book.id), "quantity": 2}],
        )
    ]

    event = Message.objects.get(type=STOCK_ADJUSTED, data__amount=-2)
    assert event.metadata["causation_id"] == str(run.message_id)
    assert event.metadata["edited_replay"] == str(replay.pk)
    assert event.causation_id == run.message_id
    assert run.raised_message_ids == [str(event.id)]
    # What runs of messages as they were stored raise carries no mark.
    assert not any("edited_replay" in m.metadata for m in Message.objects.exclude(pk=event.pk))


def test_a_later_plain_replay_keeps_running_with_the_edit(
    async_domain, shipped_unknown_book, stocked_book
):
    run = shipped_unknown_book
    # The edit fixes the book but asks for more copies than are in stock: it fails again.
    handler_run_edit_replay(run=run, data=corrected(run, stocked_book, quantity=12), reason="id")
    drain()
    run.refresh_from_db()
    assert run.status == "dead"  # its attempts go on counting: the fifth is past the retries
    assert "Not enough stock of 'Dune': 10 in stock, 12 requested" in run.error_message
    edit = run.edit_id

    async_domain.process(AdjustStock(book_id=str(stocked_book.id), amount=5))
    handler_run_replay(run=run, reason="restocked")
    drain()
    run.refresh_from_db()
    assert (run.status, run.edit_id) == ("succeeded", edit)
    assert Inventory.objects.get(book=stocked_book).in_stock == 3
    assert list(HandlerRunReplay.objects.filter(run=run).values_list("reason", "edited_data")) == [
        ("id", HandlerRunReplay.objects.get(pk=edit).edited_data),
        ("restocked", None),
    ]


def test_invalid_data_is_refused_naming_the_field_and_nothing_is_written(
    shipped_unknown_book, stocked_book
):
    run = shipped_unknown_book
    before = stored(run.message_id)
    row_before = HandlerRun.objects.filter(pk=run.pk).values().get()
    cases = [
        ({**run.message.data, "items": "two copies"}, "items"),
        ({**run.message.data, "items": [{"quantity": float("nan")}]}, "items[0]"),
        ({**run.message.data, "customer_name": ""}, "customer_name"),
        ({**run.message.data, "customer_name": "x" * 151}, "customer_name"),
        ({**run.message.data, "colour": "red"}, "colour"),
        ({**run.message.data, "self": "me"}, "self"),
        ("not a mapping", "__all__"),
        (run.message.data, "__all__"),  # changes nothing
    ]
    for data, field in cases:
        with pytest.raises(ValidationError) as refused:
            handler_run_edit_replay(run=run, data=data, reason="nope")
        assert field in refused.value.errors, (data, refused.value.errors)
    assert not HandlerRunReplay.objects.exists()
    assert HandlerRun.objects.filter(pk=run.pk).values().get() == row_before
    assert stored(run.message_id) == before


def test_an_edit_that_repeats_the_runs_edit_changes_nothing(shipped_unknown_book, stocked_book):
    run = shipped_unknown_book
    data = corrected(run, stocked_book, quantity=12)
    handler_run_edit_replay(run=run, data=data)
    drain()
    run.refresh_from_db()
    assert run.status == "dead"
    with pytest.raises(ValidationError, match="already runs with"):
        handler_run_edit_replay(run=run, data=data)
    assert HandlerRunReplay.objects.filter(run=run).count() == 1


def test_a_run_that_is_not_failed_or_dead_is_refused(shipped_unknown_book, stocked_book):
    run = HandlerRun.objects.get(handler="warehouse.BookEventHandler")
    assert run.status == "succeeded"
    with pytest.raises(RunNotReplayable, match="it is succeeded; only failed or dead runs"):
        handler_run_edit_replay(run=run, data={**run.message.data, "title": "Other"})
    assert not HandlerRunReplay.objects.exists()
    assert HandlerRun.objects.get(pk=run.pk).status == "succeeded"
