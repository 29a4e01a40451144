"""The payload-field index: digests of top-level scalar fields, written by the store indexer and
walked newest first by a payload search.

Neither database can index `data->>'customer_name' = %s` for any key a user types (SQLite's
expression indexes need a literal path; PostgreSQL's GIN index cannot return rows newest first),
so the indexer keeps one row per (message, top-level scalar field): a 64-bit digest of the
message's category, type, key and value, and the message's global position. A search turns its
filter into the digests of every (category, type) known to carry the key and reads each one's
newest positions from the primary key alone.
"""

import hashlib
import json

from django.db import connection

from inspector.models import IndexerPosition, PayloadKey, PayloadValue

INDEXER = "store"  # the IndexerPosition row the store indexer moves
MAX_KEY = 255  # longer keys are not indexed; a search for one scans, as before
DIGESTS_PER_QUERY = 100  # compound SELECTs stay well under SQLite's limit of 500 terms


def canonical(value):
    """The text a scalar is indexed as, or None for a list, an object or anything else.

    Numbers compare as numbers (3 and 3.0 are one value, as both databases' JSON compare them);
    text, numbers, booleans and null never collide.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return None


def digest(category, type_name, key, text):
    """A signed 64-bit digest of one field of one kind of message."""
    raw = "\x1f".join((category, type_name, key, text)).encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big", signed=True)


def indexable_key(key):
    return isinstance(key, str) and 0 < len(key) <= MAX_KEY


def fields_of(data):
    """(key, canonical value) of every top-level scalar field of a payload."""
    if not isinstance(data, dict):
        return []
    found = []
    for key, value in data.items():
        text = canonical(value)
        if text is not None and indexable_key(key):
            found.append((key, text))
    return found


def holds(data, key, value):
    """Whether a payload holds `value` at top-level `key`, in the index's terms."""
    if not isinstance(data, dict) or key not in data:
        return False
    text = canonical(data[key])
    return text is not None and text == canonical(value)


def indexed_position():
    """The last global position the indexer has read (-1 before its first step)."""
    found = IndexerPosition.objects.filter(name=INDEXER).values_list("position", flat=True)
    position = found.first()
    return -1 if position is None else position


def digests_for(key, value, *, types=(), category=""):
    """The digests a search for `key` = `value` probes: one per (category, type) with the key."""
    text = canonical(value)
    if text is None or not indexable_key(key):
        return []
    pairs = PayloadKey.objects.filter(key=key)
    if types:
        pairs = pairs.filter(type__in=types)
    if category:
        pairs = pairs.filter(category=category)
    return [digest(c, t, key, text) for c, t in pairs.values_list("category", "type")]


def newest(digests, *, below, above=-1, per_digest):
    """The newest indexed positions under `below` (and over `above`), and where to go on.

    Reads at most `per_digest` positions of each digest, newest first, in one query per hundred
    digests. Returns (positions newest first, next_below): every match at or above next_below
    is among the positions; next_below is None when no digest had more to give.
    """
    found, floor = [], None
    table = connection.ops.quote_name(PayloadValue._meta.db_table)
    for start in range(0, len(digests), DIGESTS_PER_QUERY):
        chunk = digests[start : start + DIGESTS_PER_QUERY]
        parts, params = [], []
        for i, value in enumerate(chunk):
            parts.append(
                f"SELECT * FROM (SELECT digest, global_position FROM {table} "
                "WHERE digest = %s AND global_position < %s AND global_position > %s "
                f"ORDER BY global_position DESC LIMIT %s) d{i}"
            )
            params += [value, below, above, per_digest]
        per = {}
        with connection.cursor() as cursor:
            cursor.execute(" UNION ALL ".join(parts), params)
            for value, position in cursor.fetchall():
                per.setdefault(value, []).append(position)
        for positions in per.values():
            found.extend(positions)
            if len(positions) >= per_digest:
                last = min(positions)
                floor = last if floor is None else max(floor, last)
    if floor is not None:
        found = [p for p in found if p >= floor]
    found.sort(reverse=True)
    return found, floor
