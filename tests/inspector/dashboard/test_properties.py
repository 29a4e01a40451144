"""Property-based tests of the inspector's search and replay: no input gives a 500.

The search form and its query string answer 200 or a 400 whose errors name the filters that
were sent; the replay endpoint answers every request with a clear status (404 for an id that
names no run, 403 without the permission, 400 for a bad reason, 409 for a run that is not
failed or dead) and writes only the replay it was asked for.
"""

import uuid
from urllib.parse import quote_from_bytes

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from hypothesis import example, given
from hypothesis import strategies as st

from inspector.models import HandlerRun, HandlerRunReplay, RunStatus
from tests.hostile import FORM_TEXT, examples, row_counts
from tests.warehouse.commands import ConfirmOrder, PlaceOrder, ShipOrder

pytestmark = pytest.mark.django_db(transaction=True)

SEARCH = reverse("inspector:search")
FILTERS = [
    "type",
    "category",
    "stream",
    "correlation_id",
    "since",
    "until",
    "run_status",
    "handler",
    "field",
    "after",
]
MOMENTS = st.one_of(
    st.datetimes().flatmap(
        lambda moment: st.sampled_from(
            [
                moment.strftime("%Y-%m-%dT%H:%M"),
                moment.isoformat(),
                f"{moment:%Y-%m-%d %H:%M:%S}",
                f"{moment:%Y-%m-%d}",
            ]
        )
    ),
    st.sampled_from(["0001-01-01T00:00", "9999-12-31T23:59", "9999-12-31", "2026-02-30T10:00"]),
)
FIELD_FILTERS = st.one_of(
    st.tuples(
        st.sampled_from(["customer_name", "total_items", "items.0.quantity", "a__contains", "0"]),
        st.sampled_from(["=", " = ", "=="]),
        FORM_TEXT,
    ).map("".join),
    FORM_TEXT,
)
SEARCH_VALUES = st.one_of(
    FORM_TEXT,
    MOMENTS,
    FIELD_FILTERS,
    st.uuids().map(str),
    st.sampled_from([status for status, _ in RunStatus.choices]),
)


def staff(django_user_model, username, *perms):
    """A logged-in staff client with these inspector permissions."""
    user = django_user_model.objects.create_user(username, password="not-used", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="inspector", codename__in=perms)
    )
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def operator(django_user_model):
    return staff(
        django_user_model, "operator", "view_message", "view_handlerrun", "replay_handlerrun"
    )


@pytest.fixture
def watcher(django_user_model):
    """Staff without the inspector's permissions: no payload filter, no replay."""
    return staff(django_user_model, "watcher")


@pytest.fixture
def shop(domain, add_book):
    """An order shipped (its runs succeeded) and one oversold (its inventory run failed)."""
    book = add_book()
    for quantity in (2, 12):  # 10 in stock: the second order's stock run fails
        order_id = domain.process(
            PlaceOrder(
                customer_name="Alice", items=[{"book_id": str(book.id), "quantity": quantity}]
            )
        )
        domain.process(ConfirmOrder(order_id=str(order_id)))
        domain.process(ShipOrder(order_id=str(order_id)))


@examples(40)
@given(
    query=st.dictionaries(
        st.sampled_from([*FILTERS, "page", "unknown"]), SEARCH_VALUES, min_size=1, max_size=4
    ),
    htmx=st.booleans(),
    payloads=st.booleans(),
)
@example(query={"since": "0001-01-01T00:00"}, htmx=False, payloads=True)  # an OverflowError
@example(query={"until": "9999-12-31T23:59"}, htmx=True, payloads=False)
@example(query={"after": str(2**64)}, htmx=False, payloads=True)
def test_the_search_answers_any_filters_with_results_or_their_errors(
    operator, watcher, shop, query, htmx, payloads
):
    client = operator if payloads else watcher
    before = row_counts()
    response = client.get(SEARCH, query, **({"HTTP_HX_REQUEST": "true"} if htmx else {}))
    assert response.status_code in (200, 400)
    form = response.context["form"]
    if response.status_code == 400:
        assert form.errors and set(form.errors) <= set(query), (form.errors, query)
    else:
        assert form.is_valid()
    assert row_counts() == before


RAW_PARTS = st.one_of(
    st.tuples(st.sampled_from(FILTERS), st.binary(max_size=40)).map(
        lambda pair: f"{pair[0]}={quote_from_bytes(pair[1])}"
    ),
    st.sampled_from(["%", "%zz", "%00", "=", "&", "field=%ED%A0%80", "after=-1", "since=%FF"]),
    st.text(max_size=20).map(lambda text: quote_from_bytes(text.encode("utf-8", "replace"))),
)


@examples(25)
@given(parts=st.lists(RAW_PARTS, max_size=5))
def test_the_search_takes_any_query_string(operator, shop, parts):
    """Bytes that are not UTF-8, broken escapes, repeated and empty keys."""
    before = row_counts()
    response = operator.get(f"{SEARCH}?{'&'.join(parts)}")
    assert response.status_code in (200, 400)
    assert row_counts() == before


NAMES = st.one_of(
    FORM_TEXT.filter(lambda text: text.strip("/") and "/" not in text),
    st.sampled_from(["warehouse::order", "warehouse.InventoryEventHandler", "a\x00b", "\x00"]),
)


@examples(30)
@example(page="stream", name="a\x00b", after="")  # PostgreSQL refused the query: a 500
@example(page="live", name="\x00", after="")
@example(page="stream", name="warehouse::order", after=str(2**70))
@given(
    page=st.sampled_from(["live", "category", "stream", "pause"]),
    name=NAMES,
    after=FORM_TEXT | st.just(""),
)
def test_the_pages_named_in_their_url_take_any_name(operator, shop, page, name, after):
    """A category, stream, handler or live filter that names nothing is a 404 or no rows."""
    before = row_counts()
    if page == "live":
        response = operator.get(reverse("inspector:live"), {"type": name, "category": after})
    elif page == "pause":
        response = operator.post(reverse("inspector:handler-pause", args=[name]))
    else:
        response = operator.get(reverse(f"inspector:{page}", args=[name]), {"after": after})
    assert response.status_code in (200, 302, 404)
    if response.status_code != 302:  # a known handler paused: its state is a row
        assert row_counts() == before


# Replay ---------------------------------------------------------------------------------------

OTHER_STATES = [RunStatus.SUCCEEDED, RunStatus.PENDING, RunStatus.RUNNING, RunStatus.RESOLVED]


@pytest.fixture
def runs(shop):
    """One run in each state: the failed run of the shop, and runs that succeeded moved to the
    other states (a dead run, one a worker holds, one waiting, one resolved by hand)."""
    failed = HandlerRun.objects.get(status=RunStatus.FAILED)
    others = list(HandlerRun.objects.filter(status=RunStatus.SUCCEEDED).order_by("id"))
    states = {RunStatus.FAILED: failed}
    for run, status in zip(others, [RunStatus.DEAD, *OTHER_STATES], strict=False):
        HandlerRun.objects.filter(pk=run.pk).update(status=status)
        states[status] = run
    assert len(states) == 6
    return states


REASONS = st.one_of(
    st.none(),  # left out
    st.text(max_size=500).filter(lambda text: "\x00" not in text),
    st.text(min_size=501, max_size=600),
    st.tuples(st.text(max_size=5), st.just("\x00"), st.text(max_size=5)).map("".join),
)


@examples(30)
@given(
    target=st.sampled_from([*RunStatus.values, "unknown", "malformed"]),
    reason=REASONS,
    htmx=st.booleans(),
    permitted=st.booleans(),
)
@example(target=RunStatus.SUCCEEDED, reason=None, htmx=False, permitted=True)  # was a 302
@example(target=RunStatus.FAILED, reason="x" * 501, htmx=False, permitted=True)
def test_replay_answers_every_request_clearly(
    operator, watcher, runs, target, reason, htmx, permitted
):
    client = operator if permitted else watcher
    run = runs.get(target)
    if target == "malformed":
        url = reverse("inspector:run-replay", args=[uuid.uuid4()]).replace("-", "_", 1)
    else:
        url = reverse("inspector:run-replay", args=[run.id if run else uuid.uuid4()])
    data = {} if reason is None else {"reason": reason}
    before = row_counts()
    response = client.post(url, data, **({"HTTP_HX_REQUEST": "true"} if htmx else {}))
    valid_reason = reason is None or (len(reason) <= 500 and "\x00" not in reason)
    if run is None:
        expected = 404
    elif not permitted:
        expected = 403
    elif not valid_reason:
        expected = 400
    elif target not in (RunStatus.FAILED, RunStatus.DEAD):
        expected = 409
    else:
        expected = 200 if htmx else 302
    assert response.status_code == expected, (target, reason, htmx, permitted)
    if expected in (200, 302):
        assert HandlerRun.objects.get(pk=run.pk).status == RunStatus.PENDING
        replay = HandlerRunReplay.objects.get(run=run)
        assert replay.previous_status == target and replay.reason == (reason or "")
        # As it was, for the next example.
        replay.delete()
        HandlerRun.objects.filter(pk=run.pk).update(status=target)
        return
    assert row_counts() == before
    html = response.content.decode()
    if expected == 400:  # the notice names the field
        assert "Why replay? Ensure this value" in html or "Why replay? Null characters" in html
    if expected == 409:
        assert "only failed or dead runs can be replayed" in response.content.decode()


@examples(20)
@given(
    selected=st.lists(
        st.one_of(
            st.uuids().map(str), FORM_TEXT, st.sampled_from(["failed", "succeeded", "unknown"])
        ),
        max_size=4,
    ),
    action=st.sampled_from(["replay_selected", "resolve_selected"]),
    confirm=st.booleans(),
)
@example(selected=["not-a-uuid"], action="replay_selected", confirm=True)  # was a 500
def test_the_admin_replay_takes_any_selection(operator, runs, selected, action, confirm):
    """Ids that name no run or are no UUID at all select nothing; the admin says so."""
    ids = [str(runs[s].id) if s in ("failed", "succeeded") else s for s in selected]
    data = {"action": action, "_selected_action": ids}
    if confirm:
        data["confirm"] = "yes"
    before = row_counts()
    response = operator.post(reverse("admin:inspector_handlerrun_changelist"), data)
    assert response.status_code in (200, 302)
    if str(runs[RunStatus.FAILED].id) not in ids or not confirm:
        assert row_counts() == before
    else:  # the failed run was replayed or resolved; put it back for the next example
        HandlerRunReplay.objects.filter(run=runs[RunStatus.FAILED]).delete()
        HandlerRun.objects.filter(pk=runs[RunStatus.FAILED].pk).update(status=RunStatus.FAILED)
