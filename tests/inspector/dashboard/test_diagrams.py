"""Sequence diagrams drawn from real flows: participants, arrows, failures, escaping, queries."""

import re
import uuid
import xml.etree.ElementTree as ET

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inspector import handle
from inspector.dashboard.drawing.mermaid import render_mermaid
from inspector.dashboard.drawing.sequence import render_svg
from inspector.dashboard.drawing.svg import text_width
from inspector.dashboard.flows import Flow, Participant, Step, build_flow
from inspector.dashboard.formatting import format_ms
from inspector.models import HandlerRun, Message
from inspector.services import handler_run_replay
from inspector.workers.worker import Worker
from tests.warehouse.commands import AdjustStock, ConfirmOrder, PlaceOrder, ShipOrder
from tests.warehouse.events import StockAdjusted
from tests.warehouse.models import Inventory

pytestmark = pytest.mark.django_db(transaction=True)

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert(1)</script>"
INVENTORY = "warehouse.InventoryEventHandler"
MERMAID_PARTICIPANT = re.compile(r"^\s+participant (P\d+) as (.+)$")
MERMAID_ARROW = re.compile(r"^\s+(P\d+)(->>|-->>|-x)(P\d+): (.+)$")


class StockWatcher:
    """Registered per test (extra_handlers): a follow-on handler of the events handlers raise."""

    @handle(StockAdjusted)
    def on_stock_adjusted(self, event):
        pass


def order_flow(domain, book, *, quantity=1, correlation_id=None, customer="Alice"):
    """Place, confirm and ship one order as one correlation; return the correlation id."""
    correlation_id = correlation_id or uuid.uuid4()
    order_id = domain.process(
        PlaceOrder(customer_name=customer, items=[{"book_id": str(book.id), "quantity": quantity}]),
        correlation_id=correlation_id,
    )
    domain.process(ConfirmOrder(order_id=order_id), correlation_id=correlation_id)
    domain.process(ShipOrder(order_id=order_id), correlation_id=correlation_id)
    return correlation_id


def ship_flow(domain, book, *, quantity=1, customer="Alice"):
    """Only ShipOrder in the correlation: the seed's Event Handler Workflow, end to end."""
    order_id = domain.process(
        PlaceOrder(customer_name=customer, items=[{"book_id": str(book.id), "quantity": quantity}])
    )
    domain.process(ConfirmOrder(order_id=order_id))
    correlation_id = uuid.uuid4()
    domain.process(ShipOrder(order_id=order_id), correlation_id=correlation_id)
    return correlation_id


def classes(element):
    return element.get("class", "").split()


def groups(root, name):
    return [g for g in root.iter(f"{SVG}g") if name in classes(g)]


def child_text(element, cls):
    found = [t for t in element.iter(f"{SVG}text") if cls in classes(t)]
    return found[0].text if found else None


def title(element):
    return element.find(f"{SVG}title").text


def parse_mermaid(text):
    def plain(value):
        return re.sub(r"#(\d+);", lambda m: chr(int(m.group(1))), value).replace("\u200b", "")

    lines = text.splitlines()
    assert lines[0] == "sequenceDiagram"
    participants, arrows = {}, []
    for line in lines[1:]:
        if match := MERMAID_PARTICIPANT.match(line):
            participants[match[1]] = plain(match[2])
        elif match := MERMAID_ARROW.match(line):
            arrows.append(
                (participants[match[1]], match[2], participants[match[3]], plain(match[4]))
            )
    return list(participants.values()), arrows


# The flow ---------------------------------------------------------------------------------------


def test_a_ship_flow_has_the_seed_participants_and_steps_in_time_order(domain, add_book):
    book = add_book()
    correlation_id = ship_flow(domain, book, quantity=2)

    flow = build_flow(correlation_id)

    assert [(p.label, p.kind) for p in flow.participants] == [
        ("ShipOrder", "command"),
        ("OrderCommandHandler", "command_handler"),
        ("Order", "aggregate"),
        ("Event store", "store"),
        ("InventoryEventHandler", "event_handler"),
        ("OrderNotificationHandler", "event_handler"),
        ("Inventory", "written_aggregate"),
    ]
    shipped = Message.objects.get(type="warehouse.OrderShipped.v1", correlation_id=correlation_id)
    adjusted = Message.objects.get(type="warehouse.StockAdjusted.v1", correlation_id=correlation_id)
    labels = [(s.kind, s.label) for s in flow.steps]
    assert labels[0] == ("command", "ShipOrder")
    assert labels[1][0] == "run" and labels[1][1].startswith("handled in ")
    assert labels[2] == ("raise", "raise_ OrderShipped")
    assert labels[3] == ("append", f"append OrderShipped at #2 (global {shipped.global_position})")
    assert [k for k, _ in labels] == [
        "command", "run", "raise", "append",
        "deliver", "run", "persist", "append",
        "deliver", "run",
    ]  # fmt: skip
    assert labels[6] == ("persist", "persist Inventory · raise_ StockAdjusted")
    assert labels[7] == (
        "append",
        f"append StockAdjusted at #{adjusted.position} (global {adjusted.global_position})",
    )
    assert labels[9][1].endswith("raised no events")  # the notification handler only mails

    times = [s.at_ms for s in flow.steps]
    assert times[0] == 0
    assert times == sorted(times)
    inventory_run = HandlerRun.objects.get(message=shipped, handler=INVENTORY)
    run_step = flow.steps[5]
    assert run_step.run_id == str(inventory_run.pk)
    assert run_step.label == f"handled in {format_ms(inventory_run.duration_us / 1000)}"
    started = (inventory_run.started_at - flow.started_at).total_seconds() * 1000
    assert run_step.at_ms == pytest.approx(started)


def test_a_failed_run_is_marked_with_its_error_and_raises_nothing(domain, add_book):
    book = add_book()  # 10 in stock
    correlation_id = ship_flow(domain, book, quantity=12)

    flow = build_flow(correlation_id)

    failed = [s for s in flow.steps if s.failed]
    assert [(s.kind, s.source) for s in failed] == [
        ("deliver", "store"),
        ("run", f"handler:{INVENTORY}"),
    ]
    assert "Not enough stock" in failed[1].error
    assert failed[1].error.startswith("DomainError: ")
    assert not any(s.kind == "persist" for s in flow.steps)
    assert "aggregate:warehouse::inventory" not in [p.key for p in flow.participants]


def test_a_message_flow_shows_its_cause_chain_and_what_followed(domain, add_book, extra_handlers):
    extra_handlers(StockWatcher, part_of=Inventory)
    book = add_book()
    correlation_id = ship_flow(domain, book)
    adjusted = Message.objects.get(type="warehouse.StockAdjusted.v1", correlation_id=correlation_id)

    flow = build_flow(adjusted)

    assert flow.focus_id == str(adjusted.pk)
    handlers = [p.label for p in flow.participants if p.kind == "event_handler"]
    assert handlers == ["InventoryEventHandler", "StockWatcher"]  # not the sibling notifier
    assert [s.kind for s in flow.steps] == [
        "command", "run", "raise", "append",
        "deliver", "run", "persist", "append",
        "deliver", "run",
    ]  # fmt: skip
    assert flow.steps[-1].source == "handler:warehouse.StockWatcher"


def test_depth_limits_the_follow_on_runs_drawn(domain, add_book, extra_handlers):
    extra_handlers(StockWatcher, part_of=Inventory)
    book = add_book()
    correlation_id = ship_flow(domain, book)
    shipped = Message.objects.get(type="warehouse.OrderShipped.v1", correlation_id=correlation_id)

    shallow = build_flow(shipped, depth=0)
    deep = build_flow(shipped, depth=1)

    watcher = "handler:warehouse.StockWatcher"
    assert watcher not in [p.key for p in shallow.participants]
    assert shallow.hidden_runs == 1
    notes = [s for s in shallow.steps if s.kind == "note"]
    assert [n.label for n in notes] == ["StockAdjusted: 1 run below depth 0"]
    assert any(s.kind == "append" and "StockAdjusted" in s.label for s in shallow.steps)
    assert watcher in [p.key for p in deep.participants]
    assert deep.hidden_runs == 0
    assert [s.kind for s in deep.steps if s.target == watcher] == ["deliver", "run"]
    assert build_flow(shipped).steps == deep.steps


def test_a_retry_after_replay_is_drawn_as_repeated_arrows(domain, add_book, admin_user):
    book = add_book()
    correlation_id = ship_flow(domain, book, quantity=12)
    run = HandlerRun.objects.get(handler=INVENTORY)
    assert run.status in ("failed", "dead")
    handler_run_replay(run=run, user=admin_user, reason="restocked")
    domain.process(AdjustStock(book_id=book.id, amount=10))
    Worker(worker_id="test-worker").drain()
    run.refresh_from_db()
    assert (run.status, run.attempts) == ("succeeded", 2)

    flow = build_flow(correlation_id)

    lane = f"handler:{INVENTORY}"
    steps = [(s.kind, s.status, s.attempt) for s in flow.steps if lane in (s.source, s.target)]
    assert steps == [
        ("deliver", "failed", 1),
        ("run", "failed", 1),
        ("note", "replayed", None),
        ("deliver", "succeeded", 2),
        ("run", "succeeded", 2),
        ("persist", "", None),
    ]
    note = next(s for s in flow.steps if s.kind == "note")
    assert note.label == f"replayed by {admin_user.get_username()}: restocked"
    assert [s.label for s in flow.steps if s.kind == "deliver" and s.target == lane] == [
        "deliver OrderShipped · attempt 1",
        "deliver OrderShipped · attempt 2",
    ]
    assert not flow.pending

    _, arrows = parse_mermaid(render_mermaid(flow))
    assert [a[1] for a in arrows].count("-x") == 1


def test_pending_runs_are_drawn_dashed_until_a_worker_runs_them(domain, add_book):
    domain.config["event_processing"] = "async"
    add_book()
    command = Message.objects.get(type="warehouse.AddBook.v1")

    flow = build_flow(command)

    deliver = flow.steps[-1]
    assert (deliver.kind, deliver.status, deliver.label) == (
        "deliver",
        "pending",
        "deliver BookAdded · pending",
    )
    assert flow.pending
    root = ET.fromstring(render_svg(flow))
    pending = groups(root, "pending")
    assert len(pending) == 1 and "arrow" in classes(pending[0])
    assert pending[0].find(f"{SVG}line").get("stroke-dasharray")
    assert render_mermaid(flow).splitlines()[-1].strip().startswith("P4-->>P5: deliver BookAdded")


# The SVG ----------------------------------------------------------------------------------------


def test_svg_has_the_participants_in_order_and_one_arrow_per_step(domain, add_book):
    book = add_book()
    flow = build_flow(ship_flow(domain, book, quantity=2))

    root = ET.fromstring(render_svg(flow))

    assert root.tag == f"{SVG}svg"
    participants = groups(root, "participant")
    assert [child_text(g, "name") for g in participants] == [p.label for p in flow.participants]
    centres = [float(g.find(f"{SVG}text").get("x")) for g in participants]
    assert centres == sorted(centres) and len(set(centres)) == len(centres)

    arrows = groups(root, "arrow")
    assert len(arrows) == len(flow.arrows) == len(flow.steps)
    assert [g.get("data-step") for g in arrows] == [str(n) for n in range(1, len(arrows) + 1)]
    assert [child_text(g, "label") for g in arrows] == [s.label for s in flow.steps]
    assert [(g.get("data-source"), g.get("data-target")) for g in arrows] == [
        (s.source, s.target) for s in flow.steps
    ]
    assert [classes(g)[1] for g in arrows] == [s.kind for s in flow.steps]
    ticks = [g.find(f"{SVG}text").text for g in groups(root, "tick")]
    assert ticks[0] == "0.00 ms" and all(t.endswith(" ms") for t in ticks)
    assert len(ticks) == len(flow.steps)


def test_svg_marks_the_failed_attempt_in_red_with_its_error(domain, add_book):
    book = add_book()
    flow = build_flow(ship_flow(domain, book, quantity=12))

    root = ET.fromstring(render_svg(flow))

    failed_runs = [g for g in groups(root, "failed") if "run" in classes(g)]
    assert len(failed_runs) == 1
    run = failed_runs[0]
    assert "arrow" in classes(run)
    assert run.get("data-source") == f"handler:{INVENTORY}"
    error = child_text(run, "error")
    assert error.startswith("DomainError: Not enough stock")
    assert "Not enough stock" in title(run)
    red = {el.get("stroke") for el in run.iter() if el.get("stroke")}
    assert red == {"#dc2626"}
    succeeded = [g for g in groups(root, "succeeded") if "run" in classes(g)]
    assert succeeded and all("failed" not in classes(g) for g in succeeded)


def test_svg_escapes_a_hostile_customer_name(domain, add_book):
    book = add_book()
    flow = build_flow(order_flow(domain, book, customer=HOSTILE))

    svg = render_svg(flow)

    assert "<script" not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    root = ET.fromstring(svg)
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert any(HOSTILE in t for t in titles)  # the payload, shown as text on hover
    assert not list(root.iter(f"{SVG}script")) and not list(root.iter("script"))


def test_svg_escapes_every_label_and_drops_characters_xml_cannot_carry():
    nasty = f'{HOSTILE} & "quotes" \x00\x07 \ud800'
    flow = Flow(
        correlation_id=nasty,
        participants=[
            Participant(key=nasty, kind="command", label=nasty, detail=nasty),
            Participant(key="store", kind="store", label="Event store"),
        ],
        steps=[
            Step("command", nasty, "store", nasty, 0.0, detail=nasty),
            Step("run", "store", "store", nasty, 1.5, status="dead", error=nasty),
            Step("note", "store", "store", nasty, None),
        ],
    )

    svg = render_svg(flow, title=nasty)

    assert "<script" not in svg
    root = ET.fromstring(svg)
    assert child_text(groups(root, "participant")[0], "name").startswith(HOSTILE + ' & "quotes"')
    dead = groups(root, "dead")[0]
    assert {"arrow", "run", "dead", "failed"} <= set(classes(dead))
    assert child_text(dead, "error").startswith(HOSTILE)


def test_svg_labels_do_not_overlap(domain, add_book, extra_handlers):
    extra_handlers(StockWatcher, part_of=Inventory)
    book = add_book()
    correlation_id = order_flow(domain, book, quantity=12, customer="Alice")  # fails
    order_flow(domain, book, quantity=2, correlation_id=correlation_id)
    flow = build_flow(correlation_id)

    root = ET.fromstring(render_svg(flow))

    boxes = []
    for text in root.iter(f"{SVG}text"):
        if not text.text or not ({"label", "error", "name"} & set(classes(text))):
            continue
        size = float(text.get("font-size", 12))
        width = text_width(text.text, size, bold="name" in classes(text))
        x, y = float(text.get("x")), float(text.get("y"))
        if text.get("text-anchor") == "middle":
            x -= width / 2
        boxes.append((x, y - size, x + width, y + 3, text.text))
    width = float(root.get("width"))
    for i, a in enumerate(boxes):
        assert a[0] >= 0 and a[2] <= width, a
        for b in boxes[i + 1 :]:
            apart = a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
            assert apart, (a, b)
    # Each arrow between two lanes is at least as wide as its label.
    centres = {
        g.get("data-key"): float(g.find(f"{SVG}text").get("x")) for g in groups(root, "participant")
    }
    for arrow in groups(root, "arrow"):
        source, target = arrow.get("data-source"), arrow.get("data-target")
        if source != target:
            span = abs(centres[source] - centres[target])
            assert span >= text_width(child_text(arrow, "label")), arrow.get("data-step")


def test_an_empty_flow_renders_a_placeholder():
    root = ET.fromstring(render_svg(Flow(correlation_id=str(uuid.uuid4()))))
    assert "empty" in classes(root)
    assert render_mermaid(Flow(correlation_id="x")) == "sequenceDiagram\n    autonumber\n"


# Mermaid ----------------------------------------------------------------------------------------


def test_mermaid_has_the_same_participants_and_arrows_in_the_same_order(domain, add_book):
    book = add_book()
    correlation_id = order_flow(domain, book, quantity=12, customer=HOSTILE)
    flow = build_flow(correlation_id)
    root = ET.fromstring(render_svg(flow))

    text = render_mermaid(flow)
    participants, arrows = parse_mermaid(text)

    assert text.splitlines()[1].strip() == "autonumber"
    assert participants == [child_text(g, "name") for g in groups(root, "participant")]
    svg_arrows = groups(root, "arrow")
    assert len(arrows) == len(svg_arrows) == len(flow.arrows)
    by_key = {p.key: p.label for p in flow.participants}
    for (source, kind, target, message), g in zip(arrows, svg_arrows, strict=True):
        assert (source, target) == (by_key[g.get("data-source")], by_key[g.get("data-target")])
        assert message.startswith(child_text(g, "label"))
        assert (kind == "-x") == ("run" in classes(g) and "failed" in classes(g))
    failed = [a for a in arrows if a[1] == "-x"]
    assert len(failed) == 1 and "Not enough stock" in failed[0][3]


def test_mermaid_escapes_what_would_break_its_syntax():
    nasty = 'a;b #c %%d <e> "f"\nwrap: g'
    flow = Flow(
        correlation_id="x",
        participants=[
            Participant(key="one", kind="command", label=nasty),
            Participant(key="two", kind="store", label="wrap: store"),
        ],
        steps=[
            Step("command", "one", "two", nasty, 0.0),
            Step("note", "two", "two", nasty, 1.0),
        ],
    )

    text = render_mermaid(flow)

    shown = [re.split(r" as |: ", line, maxsplit=1)[1] for line in text.splitlines()[2:]]
    for label in shown:
        assert not re.search(r"[#;%<>\"]", re.sub(r"#\d+;", "", label))  # but entity codes
    assert len(text.splitlines()) == 6  # header, autonumber, 2 participants, arrow, note
    participants, arrows = parse_mermaid(text)
    assert participants == ['a;b #c %%d <e> "f" wrap: g', "wrap: store"]
    assert arrows == [(participants[0], "->>", participants[1], participants[0])]
    assert "P2 as \u200bwrap: store" in text


# Queries ----------------------------------------------------------------------------------------


def test_building_a_flow_takes_the_same_few_queries_however_long_the_flow(domain, add_book):
    book = add_book()
    short = order_flow(domain, book)
    long = order_flow(domain, book)
    for _ in range(4):
        order_flow(domain, book, correlation_id=long)
    assert (
        Message.objects.filter(correlation_id=long).count()
        == 5 * Message.objects.filter(correlation_id=short).count()
    )

    counts = []
    for correlation_id in (short, long):
        with CaptureQueriesContext(connection) as queries:
            flow = build_flow(correlation_id)
        counts.append(len(queries))
    assert counts == [2, 2]  # messages, then runs: no failures, no history to read
    assert len(flow.steps) > 40


def test_a_flow_with_failures_and_replays_takes_at_most_four_queries(
    domain, add_book, admin_user, django_assert_max_num_queries, django_assert_num_queries
):
    book = add_book()
    correlation_id = order_flow(domain, book, quantity=12)
    for _ in range(3):
        order_flow(domain, book, quantity=12, correlation_id=correlation_id)
    for run in HandlerRun.objects.filter(handler=INVENTORY)[:2]:
        handler_run_replay(run=run, user=admin_user, reason="try again")
    shipped = Message.objects.filter(type="warehouse.OrderShipped.v1").last()

    with django_assert_max_num_queries(4):
        flow = build_flow(correlation_id)
    with django_assert_max_num_queries(4):
        build_flow(shipped, depth=0)
    with django_assert_num_queries(0):
        render_svg(flow)
        render_mermaid(flow)

    assert len([s for s in flow.steps if s.failed and s.kind == "run"]) == 4
    assert len([s for s in flow.steps if s.kind == "note"]) == 2


def test_a_long_correlation_is_cut_at_the_limit_with_a_note(domain, add_book):
    book = add_book()
    correlation_id = order_flow(domain, book)
    order_flow(domain, book, correlation_id=correlation_id)

    flow = build_flow(correlation_id, limit=4)

    assert flow.truncated
    drawn = {s.message_id for s in flow.steps if s.message_id}
    first_four = Message.objects.filter(correlation_id=correlation_id)[:4]
    assert drawn == {str(m.pk) for m in first_four}
    assert flow.steps[-1].label == "flow cut at 4 messages"
    ET.fromstring(render_svg(flow))
