"""The inspector's row tags draw exactly what the templates they replaced drew."""

import json
import re
import uuid

import pytest
from django.template import Context, Template
from django.utils import timezone

from inspector.dashboard import fragments as rows
from inspector.models import HandlerRun, Message, RunStatus
from inspector.runtime.names import short_stream
from tests.warehouse.commands import PlaceOrder

pytestmark = pytest.mark.django_db(transaction=True)


# The markup these rows replaced, as Django templates drew it.
BADGE = (
    '<a id="run-{{ run.id }}"{% if oob %} hx-swap-oob="outerHTML"{% endif %} '
    'class="run-badge status-{{ run.status }}" '
    "href=\"{% url 'inspector:message' run.message_id %}#run-{{ run.id }}\" "
    'title="{{ run.handler }}: {{ run.status }}{% if run.attempts %}, attempt {{ run.attempts }}'
    "{% endif %}{% if run.duration_us is not None %}, {{ run.duration_us|ms }}{% endif %}"
    '{% if run.error_type %} — {{ run.error_type|short_handler }}{% endif %}" '
    'data-status="{{ run.status }}">{{ run.handler|short_handler }} '
    '<span class="run-status">{{ run.status }}</span></a>'
)
FEED_ROW = (
    '{% if oob %}<div hx-swap-oob="afterbegin:#feed-rows">{% endif %}'
    '<div class="feed-row kind-{{ message.kind }}" id="msg-{{ message.id }}" '
    'data-position="{{ message.global_position }}" role="row">'
    '<span role="cell" class="col-pos">{{ message.global_position }}</span>'
    '<span role="cell" class="col-type"><span class="kind-tag">{{ message.kind }}</span> '
    "<a href=\"{% url 'inspector:message' message.id %}\">{{ message.type|short_type }}</a></span>"
    '<span role="cell" class="col-stream" title="{{ message.stream }}">'
    "{{ message.stream|short_stream }} "
    '<span class="position">#{{ message.position }}</span></span>'
    '<span role="cell" class="col-time"><time datetime="{{ message.time|date:\'c\' }}">'
    '{{ message.time|date:"H:i:s.u"|slice:":12" }}</time></span>'
    '<span role="cell" class="col-runs">{% with oob=False %}{% for run in runs %}'
    + BADGE
    + '{% empty %}<span class="muted">no handlers</span>{% endfor %}{% endwith %}</span>'
    "</div>{% if oob %}</div>{% endif %}"
)
RUNS_CELL = (
    "<td>{% for run in runs %}" + BADGE + '{% empty %}<span class="muted">—</span>{% endfor %}</td>'
)
SEARCH_ROW = (
    '<tr data-global-position="{{ message.global_position }}">'
    '<td class="number">{{ message.global_position }}</td>'
    "<td><time datetime=\"{{ message.time|date:'c' }}\">"
    '{{ message.time|date:"Y-m-d H:i:s" }}</time></td>'
    '<td><span class="kind-tag">{{ message.kind }}</span> '
    "<a href=\"{% url 'inspector:message' message.id %}\">{{ message.type|short_type }}</a></td>"
    "<td><a href=\"{% url 'inspector:stream' message.stream %}#position-{{ message.position }}\">"
    '<code>{{ message.stream }}</code></a> <span class="muted">@{{ message.position }}</span></td>'
    "<td><a href=\"{% url 'inspector:flow' message.correlation_id %}\">"
    "<code>{{ message.correlation_id|short_id }}</code></a></td>"
    + RUNS_CELL
    + '{% if show_data %}<td><code class="payload-line">{{ message.data_text }}</code></td>'
    "{% endif %}</tr>"
)
STREAM_CELLS = (
    '<td class="number">{{ message.position }}</td>'
    "<td><a href=\"{% url 'inspector:message' message.id %}\">{{ message.type|short_type }}</a>"
    '<br><span class="muted small">#{{ message.global_position }}</span></td>'
    '<td><time datetime="{{ message.time|date:\'c\' }}">{{ message.time|date:"Y-m-d H:i:s.u" }}'
    "</time></td>" + RUNS_CELL
)


def drawn(markup, **context):
    html = Template("{% load inspector_tags %}" + markup).render(Context(context))
    return re.sub(r">\s+<", "><", html.strip())


@pytest.fixture
def listed(domain, add_book):
    """Messages with hostile text in their payload, stream and runs, and a run with none."""
    book = add_book(title="<script>alert(1)</script>")
    domain.process(
        PlaceOrder(customer_name="<b>Al</b>", items=[{"book_id": str(book.id), "quantity": 1}])
    )
    run = HandlerRun.objects.order_by("global_position").last()
    HandlerRun.objects.filter(pk=run.pk).update(
        status=RunStatus.FAILED, attempts=2, error_type='x.<Err"or>', duration_us=123456
    )
    messages = list(Message.objects.order_by("global_position"))
    Message.objects.filter(pk=messages[0].pk).update(stream='odd::stream-<"&>')
    messages[0].stream = 'odd::stream-<"&>'
    runs = {}
    for one in HandlerRun.objects.order_by("handler"):
        runs.setdefault(one.message_id, []).append(one)
    for message in messages:
        message.listed_runs = runs.get(message.id, [])
        message.data_text = json.dumps(message.data)
    assert any(m.listed_runs for m in messages) and not all(m.listed_runs for m in messages)
    return messages


@pytest.mark.parametrize("oob", [False, True])
def test_run_badges_draw_what_the_badge_template_drew(listed, oob):
    runs = [run for message in listed for run in message.listed_runs]
    for run in runs:
        assert drawn("{% run_badge run %}", run=run) == drawn(BADGE, run=run, oob=False)
        assert rows.run_badge(run, oob=oob) == drawn(BADGE, run=run, oob=oob)
    assert "&lt;Err&quot;or&gt;" in rows.run_badges(runs)


@pytest.mark.parametrize("zone", ["UTC", "America/Los_Angeles"])
def test_message_rows_draw_what_their_templates_drew(settings, listed, zone):
    settings.TIME_ZONE = zone
    for message in listed:
        runs = message.listed_runs
        assert drawn("{% feed_row m runs %}", m=message, runs=runs) == drawn(
            FEED_ROW, message=message, runs=runs, oob=False
        )
        assert drawn("{{ html }}", html=rows.feed_row(message, runs, oob=True)) == drawn(
            FEED_ROW, message=message, runs=runs, oob=True
        )
        for show in (True, False):
            assert drawn("{% search_row m show %}", m=message, show=show) == drawn(
                SEARCH_ROW, message=message, runs=runs, show_data=show
            )
        assert drawn("{% stream_cells m runs %}", m=message, runs=runs) == drawn(
            STREAM_CELLS, message=message, runs=runs
        )
    every = "".join(rows.search_row(m, show_data=True) for m in listed)
    assert "<script>" not in every and "&lt;script&gt;" in every
    assert "&lt;b&gt;Al&lt;/b&gt;" in every


def test_the_feed_shows_a_streams_id_by_its_end_and_its_whole_name_on_hover(listed):
    """The feed's stream column is too narrow for `warehouse::order-<uuid> #3`: the ellipsis
    hid the id's distinct digits and the position; the row keeps the whole name as its title."""
    order_streams = [m for m in listed if m.stream.startswith("warehouse::order-")]
    assert order_streams
    for message in order_streams:
        html = rows.feed_row(message, message.listed_runs)
        shown = f"warehouse::order-…{message.stream[-8:]} "
        assert f'title="{message.stream}">{shown}<span class="position">#{message.position}' in html
    for other in ("probe::ping-0", "warehouse::book-b", "odd-01a233f9-15e9-74c7-8568"):
        assert short_stream(other) == other  # a name not ending in a whole UUID: as it is


@pytest.mark.parametrize(
    "name, value",
    [
        ("inspector:message", uuid.uuid4()),
        ("inspector:flow", str(uuid.uuid4())),
        ("inspector:stream", "warehouse::order-0f1e"),
        ("inspector:stream", "odd stream/with ?#%&=+ and ünïcode <b>"),
    ],
)
def test_route_url_is_the_url_tag(name, value):
    tag = Template("{{ url }}").render(Context({"url": rows.route_url(name, value)}))
    assert tag == Template("{% url name value %}").render(Context({"name": name, "value": value}))


@pytest.mark.parametrize("zone", ["UTC", "Europe/Helsinki", "America/Los_Angeles"])
def test_time_element_is_the_date_filters(settings, zone):
    settings.TIME_ZONE = zone
    values = [timezone.now(), timezone.now().replace(microsecond=0), None]
    for value in values:
        context = Context({"value": value})
        tag = Template("{{ t }}").render(Context({"t": rows.time_element(value)}))
        filters = Template(
            """<time datetime="{{ value|date:'c' }}">{{ value|date:"Y-m-d H:i:s" }}</time>"""
        ).render(context)
        assert tag == filters


HISTORY_CELLS = (
    '<td><dl class="fields">{% for key, value in changed %}<dt>{{ key }}</dt><dd><code>'
    '{{ value }}</code></dd>{% empty %}<dd class="muted">nothing</dd>{% endfor %}</dl></td>'
    '<td><dl class="fields state">{% for key, value, changed in state %}'
    '<dt{% if changed %} class="changed"{% endif %}>{{ key }}</dt>'
    '<dd{% if changed %} class="changed"{% endif %}><code>{{ value }}</code>'
    '{% if changed %}<span class="visually-hidden"> (changed)</span>{% endif %}</dd>'
    "{% endfor %}</dl></td>"
)


@pytest.mark.parametrize(
    "changed, state",
    [
        ([], [("status", '"PENDING"', False)]),
        (
            [("status", '"SHIPPED"'), ("customer_name", "\"<b>Al</b> & 'co'\"")],
            [
                ("customer_name", "\"<b>Al</b> & 'co'\"", True),
                ("status", '"SHIPPED"', True),
                ("items", '[{"quantity": 2}]', False),
            ],
        ),
    ],
)
def test_history_cells_draw_what_the_stream_template_drew(changed, state):
    assert drawn("{% history_cells changed state %}", changed=changed, state=state) == drawn(
        HISTORY_CELLS, changed=changed, state=state
    )
    assert "<b>" not in rows.history_cells(changed, state)


GROUP_RUN_ROW = (
    '<tr id="group-run-{{ run.id }}"><td class="number">{{ run.global_position }}</td>'
    "<td><a href=\"{% url 'inspector:message' run.message_id %}#run-{{ run.id }}-anchor\">"
    "{{ run.message_type|short_type }}</a></td>"
    "<td><a href=\"{% url 'inspector:stream' run.stream %}\"><code>{{ run.stream }}</code></a></td>"
    '<td>{% run_badge run %}</td><td class="number">{{ run.attempts }}</td>'
    "<td>{% if run.finished_at %}<time datetime=\"{{ run.finished_at|date:'c' }}\">"
    '{{ run.finished_at|date:"Y-m-d H:i:s" }}</time>{% endif %}</td>'
    '<td class="error-text">{{ run.error_message|truncatechars:200 }}'
    '{% if run.last_action %}<p class="lineage">{{ run.last_action|operator_note }}</p>'
    "{% endif %}</td></tr>"
)


@pytest.mark.parametrize("zone", ["UTC", "America/Los_Angeles"])
def test_a_failure_groups_run_rows_draw_what_its_template_drew(
    settings, listed, zone, django_user_model
):
    from inspector.models import HandlerRunReplay

    settings.TIME_ZONE = zone
    runs = [run for message in listed for run in message.listed_runs]
    now = timezone.now()
    for number, run in enumerate(runs):
        run.finished_at = now if number % 2 else None
        run.error_message = "Not enough stock of '<b>Dune</b>' & more " * 10  # cut at 200
        run.last_action = (
            HandlerRunReplay(
                run=run,
                action="resolve",
                user=django_user_model(username="<i>ops</i>"),
                at=now,
                reason='fixed "by" <hand>',
                previous_status="dead",
                attempts_before=1,
            )
            if number % 3 == 0
            else None
        )
    assert any(r.last_action for r in runs) and any(r.last_action is None for r in runs)
    for run in runs:
        assert re.sub(r">\s+<", "><", rows.group_run_row(run)) == drawn(GROUP_RUN_ROW, run=run)
