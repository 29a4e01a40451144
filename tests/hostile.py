"""What a user or an attacker may send, as Hypothesis strategies, and the row counts of every
table to show that refusing it wrote nothing. Shared by the property-based tests of the
bookshelf (tests/bookshelf/test_properties.py) and of the inspector (tests/inspector/...)."""

import math

from django.apps import apps
from django.db import connection
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st


def examples(count):
    """`count` examples that share the test's function-scoped fixtures (the database, a
    logged-in client, the rows to act on). Knowingly: each example checks what it wrote against
    the row counts it started with, so examples need no database of their own."""
    return settings(max_examples=count, suppress_health_check=[HealthCheck.function_scoped_fixture])


def row_counts():
    """Rows in every table Django knows (the store, the domain's, users, sessions, the
    many-to-many tables), read in one query."""
    models = [
        model
        for model in apps.get_models(include_auto_created=True)
        if model._meta.managed and not model._meta.proxy
    ]
    quote = connection.ops.quote_name
    sql = " UNION ALL ".join(
        f"SELECT {index}, COUNT(*) FROM {quote(model._meta.db_table)}"
        for index, model in enumerate(models)
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return {models[index]._meta.label: count for index, count in cursor.fetchall()}


# C0 controls but tab, newline and carriage return, and DEL: no typed text holds them.
CONTROL = st.sampled_from([chr(c) for c in [*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F]])
SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
# Beyond a signed 64-bit integer, on either side, and beyond any float.
HUGE_INT = st.integers(min_value=2**63).flatmap(lambda n: st.sampled_from([n, -n - 1, n * 10**400]))
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])


def with_char(chars):
    """Text with at least one of `chars` somewhere in it."""
    return st.tuples(st.text(max_size=8), chars, st.text(max_size=8)).map("".join)


UNSTORABLE_TEXT = with_char(CONTROL | SURROGATE)
# Any value at all, nested: what a JSON body or a Python caller can hand a command.
JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | HUGE_INT
    | st.floats()
    | st.text(max_size=300)
    | UNSTORABLE_TEXT
    | st.binary(max_size=8)
    | st.uuids(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner)
        | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=3)
    ),
    max_leaves=8,
)
NOT_TEXT = st.one_of(
    st.integers(),
    st.floats(),
    st.booleans(),
    st.binary(min_size=1),
    st.lists(JUNK, min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=5), JUNK, min_size=1, max_size=3),
)
NOT_NUMBER = st.one_of(
    st.text(max_size=20),
    st.booleans(),
    st.binary(min_size=1),
    st.lists(JUNK, min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=5), JUNK, min_size=1, max_size=3),
)
BAD_IDENTIFIER = st.one_of(
    st.floats(),
    st.booleans(),
    st.binary(min_size=1),
    st.lists(JUNK, min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=5), JUNK, min_size=1, max_size=3),
    UNSTORABLE_TEXT,
    st.text(min_size=256, max_size=300),
    st.integers(min_value=10**300),
    st.just(""),
)


def bad_text(max_length, *, required):
    """Values a String(max_length=...) field must refuse."""
    bad = [NOT_TEXT, UNSTORABLE_TEXT, st.text(min_size=max_length + 1, max_size=max_length + 40)]
    if required:
        bad.append(st.just(""))
    return st.one_of(bad)


def bad_integer(low, high):
    """Values an Integer(min_value=low, max_value=high) field must refuse."""
    return st.one_of(
        st.integers(max_value=low - 1),
        st.integers(min_value=high + 1),
        HUGE_INT,
        st.floats(),
        NOT_NUMBER,
    )


def bad_float(low, high):
    """Values a Float(min_value=low, max_value=high) field must refuse."""
    return st.one_of(
        NON_FINITE,
        st.floats(max_value=low, exclude_max=True),
        st.floats(min_value=high, exclude_min=True),
        HUGE_INT,
        NOT_NUMBER,
    )


# Any character but lone surrogates and controls: what a name or a title may hold.
TEXT_CHARS = st.characters(exclude_categories=["Cs", "Cc"])

# What a form field or a query string can carry: any text a browser sends (lone surrogates
# arrive as U+FFFD, so none here), controls, numbers a form might misread, huge ones, long text.
FORM_TEXT = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=300),
    with_char(CONTROL),
    st.sampled_from(["NaN", "nan", "Infinity", "-inf", "1e400", "-1", "0", "1.5", "٣", " 7 "]),
    st.integers().map(str),
    HUGE_INT.map(str),
    st.floats().map(str),
    st.text(min_size=1000, max_size=3000),
)


def names_only(errors, field):
    """Every error of a ValidationError is about `field` (itself, one of its items or one of
    their fields)."""
    return bool(errors) and all(
        key == field or key.startswith((f"{field}[", f"{field}.")) for key in errors
    )
