"""The bookshelf bounded context."""

from inspector import Domain

domain = Domain("bookshelf")
