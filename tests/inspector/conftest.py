"""Fixtures of the inspector's own tests: the warehouse domain (tests.warehouse), handlers
registered for one test, worker processes, and a stocked book to order from."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests.processes import on_test_database
from tests.warehouse.domain import domain as warehouse_domain

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = "tests.settings"

if settings.SETTINGS_MODULE != SETTINGS:
    raise pytest.UsageError(
        f"tests/inspector runs on the warehouse domain: pytest tests/inspector --ds={SETTINGS} "
        f"(not {settings.SETTINGS_MODULE})"
    )


@pytest.fixture
def domain():
    """The warehouse domain, with its processing modes restored after the test."""
    saved = dict(warehouse_domain.config)
    yield warehouse_domain
    warehouse_domain.config.clear()
    warehouse_domain.config.update(saved)


@pytest.fixture
def extra_handlers(domain):
    """Register handler classes on the warehouse domain for one test only."""
    added = []

    def register(cls, **options):
        decorated = domain.event_handler(**options)(cls)
        added.append(decorated._spec)
        domain.init()
        return decorated

    yield register
    for spec in added:
        domain.event_handlers.remove(spec)
    domain.init()


@pytest.fixture
def add_book(domain):
    """Add a book through the AddBook command (its inventory starts at 10); returns the Book."""
    from tests.warehouse.commands import AddBook
    from tests.warehouse.models import Book

    def add(title="The Great Gatsby", author="F. Scott Fitzgerald", price=12.99, **extra):
        book_id = domain.process(
            AddBook(title=title, author=author, isbn="9780743273565", price_amount=price, **extra)
        )
        return Book.objects.get(pk=book_id)

    return add


@pytest.fixture
def book(domain, add_book):
    """A book with stock for many orders."""
    from tests.warehouse.commands import AdjustStock

    book = add_book()
    domain.process(AdjustStock(book_id=str(book.id), amount=1000))
    return book


@pytest.fixture
def order(domain):
    """Place (and optionally confirm and ship) an order; returns its id."""
    from tests.warehouse.commands import ConfirmOrder, PlaceOrder, ShipOrder

    def order(book, *, customer="Alice", quantity=1, ship=True):
        order_id = domain.process(
            PlaceOrder(
                customer_name=customer, items=[{"book_id": str(book.id), "quantity": quantity}]
            )
        )
        if ship:
            domain.process(ConfirmOrder(order_id=str(order_id)))
            domain.process(ShipOrder(order_id=str(order_id)))
        return str(order_id)

    return order


def subprocess_env(**extra):
    """The environment of a process the tests start on the test database, with these settings."""
    env = dict(os.environ, DJANGO_SETTINGS_MODULE=SETTINGS, **extra)
    on_test_database(env)
    return env


@pytest.fixture
def spawn_worker(tmp_path):
    """Start `manage.py run_handlers` processes on the test database; stop them afterwards."""
    started = []

    def spawn(*args):
        log = tmp_path / f"worker-{len(started)}.log"
        with open(log, "w") as out:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "run_handlers", *args],
                cwd=ROOT,
                env=subprocess_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        process.log = log
        started.append(process)
        return process

    yield spawn
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)


@pytest.fixture
def async_domain(domain):
    """The warehouse domain with its events handled by workers (restored after the test)."""
    domain.config["event_processing"] = "async"
    return domain


@pytest.fixture
def stocked_book(async_domain, add_book):
    """A new book, "Dune", with its inventory (10 in stock)."""
    from tests.inspector.edits import stock_book

    return stock_book(add_book)


@pytest.fixture
def shipped_unknown_book(async_domain, stocked_book):
    """The dead inventory run of an OrderShipped whose line names no book (edit and replay)."""
    from tests.inspector.edits import ship_unknown_book

    return ship_unknown_book(async_domain)
