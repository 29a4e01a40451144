"""Fixtures shared by the whole suite."""

import pytest

from bookshelf.domain import domain as bookshelf_domain


@pytest.fixture
def domain():
    """The bookshelf domain, with its processing modes restored after the test."""
    saved = dict(bookshelf_domain.config)
    yield bookshelf_domain
    bookshelf_domain.config.clear()
    bookshelf_domain.config.update(saved)


@pytest.fixture
def extra_handlers(domain):
    """Register handler classes on the bookshelf domain for one test only."""
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
    """Add a book through the AddBook command; returns the Book."""
    from bookshelf.commands import AddBook
    from bookshelf.models import Book

    def add(title="The Great Gatsby", author="F. Scott Fitzgerald", price=12.99, **extra):
        book_id = domain.process(
            AddBook(title=title, author=author, isbn="9780743273565", price_amount=price, **extra)
        )
        return Book.objects.get(pk=book_id)

    return add


@pytest.fixture(autouse=True)
def _fresh_paused_handlers():
    """Each test starts with no cached pause state (the database was emptied)."""
    from inspector.dispatch import forget_paused_handlers

    forget_paused_handlers()
