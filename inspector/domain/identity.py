"""New identities: messages, handler runs, correlations and aggregates.

UUIDv7 (RFC 9562), not v4: its first 48 bits are the time in milliseconds, then a counter
within one and random bits, so a new id sorts after the ones before it. Each index keyed by
one (a message's and a run's primary key, a run's (message, handler), a message's
correlation, and through an aggregate's id in its stream's name, (stream, position)) then
grows at its right edge instead of at a random page: at ten million messages those pages are
no longer in memory, and every random one came back as a full-page image in the WAL after
each checkpoint.

They are not secrets, and no page treats them as one (every page needs a login): one shows
when it was made, and ids made in the same millisecond by one process differ in a counter and
32 random bits (RFC 9562's method 1, as uuid-utils makes them), not in 122 as v4's do.
"""

from uuid_utils.compat import uuid7


def new_id():
    """A time-ordered UUID (a stdlib `uuid.UUID`), later than every one this process made."""
    return uuid7()
