"""Probe events and handlers on the warehouse domain, for worker, ordering and feed tests:
each handler records what it saw (Seen), and a Switch makes one fail."""

import time

from inspector import handle
from inspector.fields import Float, Integer
from tests.warehouse.domain import domain
from tests.warehouse.models import Seen, Switch


@domain.event(part_of="Book")
class Ping:
    n = Integer(required=True)
    sleep = Float()


def record(name, event):
    if event.sleep:
        time.sleep(event.sleep)
    meta = event._metadata
    Seen.objects.create(
        handler=name, message_id=meta.id, stream=meta.stream, position=meta.position, n=event.n
    )


def failing(switch):
    return Switch.objects.filter(name=switch, on=True).exists()


@domain.event_handler(stream_category="probe::ping")
class RecorderA:
    @handle(Ping)
    def on_ping(self, event):
        record("A", event)


@domain.event_handler(stream_category="probe::ping")
class RecorderB:
    @handle(Ping)
    def on_ping(self, event):
        record("B", event)


@domain.event_handler(stream_category="probe::flaky", retries=2, backoff_base=0.05, backoff_cap=0.1)
class Flaky:
    @handle(Ping)
    def on_ping(self, event):
        if failing("flaky"):
            raise RuntimeError(f"flaky is switched on (n={event.n})")
        record("Flaky", event)


@domain.event_handler(
    stream_category="probe::parked", retries=0, park_on_failure=True, backoff_base=0.01
)
class Parked:
    @handle(Ping)
    def on_ping(self, event):
        if failing(f"parked-{event.n}"):
            raise RuntimeError(f"parked fails on n={event.n}")
        record("Parked", event)


@domain.event_handler(stream_category="probe::skipping", retries=0)
class Skipping:
    @handle(Ping)
    def on_ping(self, event):
        if failing(f"skipping-{event.n}"):
            raise RuntimeError(f"skipping fails on n={event.n}")
        record("Skipping", event)
        if failing(f"skipping-db-{event.n}"):  # a database error after a write of its own
            Seen.objects.create(handler=None, message_id=event._metadata.id, stream="", position=0)
