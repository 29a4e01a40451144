"""The shop's management commands: demo data, traffic, and the local superuser."""

import io
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command
from django.db import connection

from bookshelf.management.commands.bookshelf_demo import BOOKS, Traffic
from bookshelf.models import Book, Inventory, Notification, Order
from inspector.models import HandlerRun
from tests.processes import on_test_database

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args, **options):
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def test_demo_loads_books_and_orders_in_each_state_once(row_counts):
    output = run("bookshelf_demo")
    assert f"Catalog: {len(BOOKS)} books ({len(BOOKS)} added)" in output
    assert 18 <= Book.objects.count() <= 25
    assert Inventory.objects.count() == Book.objects.count()
    assert sorted(Order.objects.values_list("status", flat=True)) == [
        "CONFIRMED",
        "CONFIRMED",
        "PENDING",
        "PENDING",
        "SHIPPED",
        "SHIPPED",
    ]
    assert Notification.objects.count() == 6  # 4 confirmations, 2 shipments
    assert not HandlerRun.objects.exclude(status="succeeded").exists()

    before = row_counts()
    output = run("bookshelf_demo")
    assert f"Catalog: {len(BOOKS)} books (0 added)" in output
    assert "the demo orders are already there" in output
    assert row_counts() == before


def test_demo_traffic_places_confirms_and_ships_until_its_budget(settings):
    output = run("bookshelf_demo", traffic=True, rate=1000, iterations=40, seed=7)
    assert "Traffic stopped: 40 commands" in output
    assert Order.objects.count() > 6
    statuses = set(Order.objects.values_list("status", flat=True))
    assert statuses == {"PENDING", "CONFIRMED", "SHIPPED"}
    assert "ShipOrder: OrderShipped → 2 runs" in output


def test_demo_traffic_sometimes_orders_more_than_the_stock():
    run("bookshelf_demo")
    lines = []
    traffic = Traffic(rng=random.Random(3), oversell=1.0, write=lines.append)
    command = traffic.new_order()
    stock = dict(Inventory.objects.values_list("book_id", "quantity"))
    first = command.items[0]
    assert first.quantity > stock[Book.objects.get(pk=first.book_id).pk]


def test_traffic_through_a_failing_gateway_leaves_failed_runs(settings):
    settings.INSPECTOR_DEMO_FAILURE_RATE = 1.0
    output = run("bookshelf_demo", traffic=True, rate=1000, iterations=30, seed=1, oversell=0)
    assert Notification.objects.count() == 0
    notifier = "bookshelf.OrderNotificationHandler"
    failed = HandlerRun.objects.filter(status="failed", handler=notifier)
    assert failed.exists()
    assert all("GatewayError" in run.error_type for run in failed)
    assert "failed handler runs" in output


@pytest.mark.parametrize("option", [{"rate": 0}, {"oversell": 2}])
def test_demo_refuses_bad_options(option):
    with pytest.raises(CommandError):
        run("bookshelf_demo", **option)


def test_ensure_local_staff_creates_then_resets_admin(settings):
    settings.DEBUG = True
    first = run("ensure_local_staff")
    password = first.split()[-1]
    assert first.startswith("Log in at http://127.0.0.1:8000/admin/ as admin with password ")
    user = authenticate(username="admin", password=password)
    assert user is not None and user.is_staff and user.is_superuser

    second = run("ensure_local_staff").split()[-1]
    assert second != password
    assert authenticate(username="admin", password=password) is None
    assert authenticate(username="admin", password=second) is not None
    assert get_user_model().objects.filter(username="admin").count() == 1


def test_ensure_local_staff_refuses_without_debug_unless_forced(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG off"):
        run("ensure_local_staff")
    assert not get_user_model().objects.exists()
    password = run("ensure_local_staff", force=True, username="ops").split()[-1]
    assert authenticate(username="ops", password=password) is not None


def test_traffic_runs_until_stopped_and_stops_gracefully():
    """The real command in its own process: SIGTERM ends it after the command in hand."""
    run("bookshelf_demo")
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="bookshelf.settings_test")
    on_test_database(env)
    connection.close()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "bookshelf_demo", "--traffic", "--rate", "20"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        lines = []
        while len(lines) < 6:  # the catalog line, the orders line, then some traffic
            line = process.stdout.readline()
            assert line, "the command ended by itself"
            lines.append(line)
        process.send_signal(signal.SIGTERM)
        rest = process.communicate(timeout=30)[0]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert "Sending traffic at 20 commands/s" in "".join(lines)
    assert re.search(r"Traffic stopped: \d+ commands", rest)
