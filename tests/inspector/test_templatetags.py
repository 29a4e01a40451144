"""The inspector's template tags draw exactly what the templates they stand in for draw."""

import uuid

import pytest
from django.template import Context, Template
from django.template.loader import render_to_string
from django.utils import timezone

from bookshelf.commands import PlaceOrder
from inspector.models import HandlerRun, RunStatus

pytestmark = pytest.mark.django_db(transaction=True)


def test_run_badges_draw_what_the_badge_template_draws(domain, add_book):
    book = add_book()
    domain.process(
        PlaceOrder(customer_name="<b>Al</b>", items=[{"book_id": str(book.id), "quantity": 1}])
    )
    run = HandlerRun.objects.order_by("global_position").last()
    HandlerRun.objects.filter(pk=run.pk).update(
        status=RunStatus.FAILED, attempts=2, error_type='x.<Err"or>', duration_us=123456
    )
    runs = list(HandlerRun.objects.filter(message_id=run.message_id).order_by("handler"))
    runs += list(HandlerRun.objects.exclude(message_id=run.message_id)[:1])
    for one in runs:
        tag = Template("{% load inspector_tags %}{% run_badges runs %}").render(
            Context({"runs": [one]})
        )
        include = render_to_string("inspector/run-badge.html", {"run": one, "oob": False})
        assert tag == include
    assert "&lt;Err&quot;or&gt;" in Template(
        "{% load inspector_tags %}{% run_badges runs %}"
    ).render(Context({"runs": runs}))


@pytest.mark.parametrize(
    "name, value",
    [
        ("inspector:message", uuid.uuid4()),
        ("inspector:flow", str(uuid.uuid4())),
        ("inspector:stream", "bookshelf::order-0f1e"),
        ("inspector:stream", "odd stream/with ?#%&=+ and ünïcode <b>"),
    ],
)
def test_route_url_is_the_url_tag(name, value):
    tag = Template("{% load inspector_tags %}{% route_url name value %}").render(
        Context({"name": name, "value": value})
    )
    assert tag == Template("{% url name value %}").render(Context({"name": name, "value": value}))


@pytest.mark.parametrize("zone", ["UTC", "Europe/Helsinki", "America/Los_Angeles"])
def test_time_element_is_the_date_filters(settings, zone):
    settings.TIME_ZONE = zone
    values = [timezone.now(), timezone.now().replace(microsecond=0), None]
    for value in values:
        context = Context({"value": value})
        tag = Template("{% load inspector_tags %}{% time_element value %}").render(context)
        filters = Template(
            """<time datetime="{{ value|date:'c' }}">{{ value|date:"Y-m-d H:i:s" }}</time>"""
        ).render(context)
        assert tag == filters
