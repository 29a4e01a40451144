"""What differs between databases is behind one interface; others are refused by name."""

from types import SimpleNamespace

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from inspector.runtime.databases import database


def test_the_connection_gets_the_module_of_its_own_database():
    db = database()
    assert db.vendor == connection.vendor
    assert db.listens is (connection.vendor == "postgresql")
    assert db.watches_commits is (connection.vendor == "sqlite")


def test_another_database_is_refused_with_what_it_is():
    mysql = SimpleNamespace(vendor="mysql", alias="legacy", display_name="MySQL")
    with pytest.raises(
        ImproperlyConfigured, match="PostgreSQL or SQLite; the 'legacy' database is MySQL"
    ):
        database(mysql)


@pytest.mark.django_db(transaction=True)
def test_global_positions_follow_each_other_across_appends(domain, add_book):
    from inspector.models import Message

    add_book()
    add_book(title="Dune")
    positions = list(
        Message.objects.order_by("global_position").values_list("global_position", flat=True)
    )
    assert positions == list(range(positions[0], positions[0] + len(positions)))
