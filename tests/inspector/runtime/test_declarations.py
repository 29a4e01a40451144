"""Mistakes in declarations fail at start-up, naming the class."""

import pytest

from inspector import Domain, handle
from inspector.exceptions import ConfigurationError
from inspector.fields import String
from tests.warehouse.models import Book, Order


def make_domain():
    domain = Domain("probe")

    @domain.event(part_of=Book)
    class Registered:
        name = String()

    @domain.command(part_of=Book)
    class DoIt:
        name = String()

    return domain, Registered, DoIt


def test_handle_of_an_unregistered_event_names_the_handler():
    domain, _, _ = make_domain()

    class NotAnEvent:
        pass

    @domain.event_handler(part_of=Book)
    class Listener:
        @handle(NotAnEvent)
        def on_it(self, event):
            pass

    with pytest.raises(ConfigurationError, match=r"Listener\.on_it handles .*NotAnEvent"):
        domain.init()


def test_command_handler_handling_an_event_is_refused():
    domain, registered, _ = make_domain()

    @domain.command_handler(part_of=Book)
    class Confused:
        @handle(registered)
        def on_it(self, command):
            pass

    with pytest.raises(ConfigurationError, match="Confused.on_it .* not a registered command"):
        domain.init()


def test_event_handler_needs_part_of_or_stream_category():
    domain, registered, _ = make_domain()

    @domain.event_handler()
    class Orphan:
        @handle(registered)
        def on_it(self, event):
            pass

    with pytest.raises(ConfigurationError, match="Orphan needs part_of"):
        domain.init()


def test_stream_category_alone_is_enough():
    domain, registered, _ = make_domain()

    @domain.event_handler(stream_category="probe::book")
    class Listener:
        @handle(registered)
        def on_it(self, event):
            pass

    domain.init()
    assert domain.handler_named("probe.Listener").stream_category == "probe::book"


def test_two_messages_with_the_same_type_name():
    domain, _, _ = make_domain()

    def declare():
        @domain.event(part_of=Order)
        class Registered:
            other = String()

    declare()
    with pytest.raises(ConfigurationError, match="share the message type probe.Registered.v1"):
        domain.init()


def test_a_command_with_two_handlers():
    domain, _, do_it = make_domain()

    @domain.command_handler(part_of=Book)
    class First:
        @handle(do_it)
        def run(self, command):
            pass

    @domain.command_handler(part_of=Book)
    class Second:
        @handle(do_it)
        def run(self, command):
            pass

    with pytest.raises(ConfigurationError, match="DoIt has two handlers: First and Second"):
        domain.init()


def test_message_without_part_of():
    domain = Domain("probe")

    @domain.event
    class Floating:
        name = String()

    with pytest.raises(ConfigurationError, match="Floating needs part_of"):
        domain.init()


def test_part_of_an_unknown_aggregate_name():
    domain = Domain("probe")

    @domain.event(part_of="Nope")
    class Lost:
        name = String()

    with pytest.raises(ConfigurationError, match="Lost: part_of='Nope' is not a registered"):
        domain.init()
