"""Payload text that means something to HTML, SVG, XML or Mermaid is shown as text on every
page that shows it: the inspector's pages, its drawings (SVG and Mermaid) and the admin's.

Whether Mermaid itself still parses that text is checked with the real Mermaid, in Chromium
(tests/browser/test_mermaid.py).
"""

import re
import xml.etree.ElementTree as ET
from html import unescape
from html.parser import HTMLParser
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from inspector import handle
from inspector.exceptions import DomainError
from inspector.models import HandlerRun, Message, RunStatus
from inspector.services import handler_run_replay
from tests.warehouse.commands import AddBook, ConfirmOrder, PlaceOrder, ShipOrder
from tests.warehouse.events import OrderPlaced

pytestmark = pytest.mark.django_db(transaction=True)

# An element, attributes that break out of either quote, the ends of SVG, CDATA and comments,
# Mermaid's statement separator, comment, entity and directive marks, and a line break.
SCRIPT = "<script>alert(1)</script>"
HOSTILE = (
    f'{SCRIPT}</svg><b id="pwned">" onmouseover="alert(2)\' onmouseover=\'alert(3)'
    " ]]> --> a;b #c %%d {e}\nend"
)
SVG = "{http://www.w3.org/2000/svg}"


class Refusal:
    """Registered for the test: fails every OrderPlaced with the customer's name, as it is."""

    @handle(OrderPlaced)
    def refuse(self, event):
        raise DomainError(f"Refused {event.customer_name}")


@pytest.fixture
def hostile(domain, extra_handlers, django_user_model):
    """One correlation whose book, customer, errors and replay reason are all HOSTILE."""
    extra_handlers(Refusal, part_of="Order")
    book_id = domain.process(AddBook(title=HOSTILE, author=HOSTILE, price_amount=9.99))
    order_id = domain.process(
        PlaceOrder(customer_name=HOSTILE, items=[{"book_id": str(book_id), "quantity": 12}])
    )
    domain.process(ConfirmOrder(order_id=str(order_id)))
    domain.process(ShipOrder(order_id=str(order_id)))  # 10 in stock: the stock run fails
    user = django_user_model.objects.create_user("ops", password="not-used", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="inspector"))
    failed = list(HandlerRun.objects.filter(status=RunStatus.FAILED))
    assert len(failed) == 2  # the refusal and the stock run
    handler_run_replay(run=failed[0], user=user, reason=HOSTILE)
    return {"user": user, "order_id": str(order_id), "runs": failed}


class Markup(HTMLParser):
    """The elements and attributes a browser would build from a page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements, self.script_text = [], []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.script_text.append(data)


def assert_html_escaped(html, url):
    """No element, attribute or script of the payload's making; True if it shows the text."""
    assert SCRIPT not in html, url
    assert '<b id="pwned">' not in html, url
    markup = Markup()
    markup.feed(html)
    for tag, attrs in markup.elements:
        assert "onmouseover" not in attrs, (url, tag, attrs)
        assert attrs.get("id") != "pwned", (url, tag)
    assert not any("alert(" in text for text in markup.script_text), url
    return SCRIPT in unescape(re.sub(r"<[^>]*>", "", html)) or SCRIPT in unescape(html)


def assert_svg_escaped(svg, url):
    """Well-formed XML whose only script-like content is text; True if it shows the text."""
    root = ET.fromstring(svg)
    assert not [el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "script"], url
    for element in root.iter():
        assert "onmouseover" not in element.attrib, url
        assert element.get("id") != "pwned", url
    assert "]]>" not in svg and SCRIPT not in svg, url
    return any(SCRIPT in text for text in root.itertext())


MERMAID_STATEMENT = re.compile(
    r"^    (?:participant P\d+ as |Note over P\d+: |P\d+(?:->>|-->>|-x)P\d+: )(?P<label>.+)$"
)


def assert_mermaid_escaped(text, url):
    """One statement a line, each label free of Mermaid's syntax but for entity codes; True
    if a label shows the text."""
    lines = text.splitlines()
    assert lines[:2] == ["sequenceDiagram", "    autonumber"], url
    shown = False
    for line in lines[2:]:
        statement = MERMAID_STATEMENT.match(line)
        assert statement, (url, line)
        label = statement["label"]
        assert not re.search(r"[#;%<>&\"{}\\]", re.sub(r"#\d+;", "", label)), (url, line)
        decoded = re.sub(r"#(\d+);", lambda m: chr(int(m[1])), label)
        shown = shown or SCRIPT in decoded
    return shown


def inspector_urls(hostile):
    messages = list(Message.objects.order_by("global_position"))
    correlations = {m.correlation_id for m in messages}
    order_stream = next(m.stream for m in messages if m.type == "warehouse.OrderPlaced.v1")
    urls = [
        reverse("inspector:live"),
        reverse("inspector:streams"),
        reverse("inspector:category", args=["warehouse::order"]),
        reverse("inspector:stream", args=[order_stream]),
        reverse("inspector:handlers"),
        reverse("inspector:map"),
        reverse("inspector:map-svg"),
        reverse("inspector:search"),
        reverse("inspector:search") + "?" + urlencode({"field": f"customer_name={HOSTILE}"}),
    ]
    for message in messages:
        urls += [
            reverse("inspector:message", args=[message.id]),
            reverse("inspector:message-diagram", args=[message.id]),
            reverse("inspector:message-svg", args=[message.id]),
            reverse("inspector:message-mermaid", args=[message.id]),
        ]
    for correlation_id in correlations:
        urls += [
            reverse("inspector:flow", args=[correlation_id]),
            reverse("inspector:flow-svg", args=[correlation_id]),
            reverse("inspector:flow-mermaid", args=[correlation_id]),
        ]
    return urls


def admin_urls(hostile):
    urls = [
        reverse("admin:inspector_message_changelist"),
        reverse("admin:inspector_handlerrun_changelist"),
        reverse("admin:inspector_handlerrun_changelist") + "?q=Refused",
    ]
    urls += [reverse("admin:inspector_message_change", args=[m.pk]) for m in Message.objects.all()]
    urls += [reverse("admin:inspector_handlerrun_change", args=[r.pk]) for r in hostile["runs"]]
    return urls


def check(client, url):
    response = client.get(url)
    assert response.status_code == 200, url
    content_type = response["Content-Type"]
    body = response.content.decode()
    if content_type.startswith("image/svg+xml"):
        return "svg", assert_svg_escaped(body, url)
    if content_type.startswith("text/plain"):
        return "mermaid", assert_mermaid_escaped(body, url)
    assert content_type.startswith("text/html"), (url, content_type)
    return "html", assert_html_escaped(body, url)


def test_hostile_payloads_are_text_on_every_inspector_page_and_drawing(client, hostile):
    client.force_login(hostile["user"])
    shown = {}
    for url in inspector_urls(hostile):
        kind, showed = check(client, url)
        shown.setdefault(kind, []).append((url, showed))
    # The payload is there to see, as text: the message pages, the stream's history, the last
    # error of the handlers, the drawings' labels and hover titles.
    assert {kind for kind, pages in shown.items() if any(s for _, s in pages)} == {
        "html",
        "svg",
        "mermaid",
    }
    pages = dict(p for pages in shown.values() for p in pages)
    assert pages[reverse("inspector:handlers")]
    assert any(showed for url, showed in pages.items() if "/streams/stream/" in url)
    assert any(showed for url, showed in pages.items() if re.search(r"/messages/[^/]+/$", url))


def test_a_hostile_search_is_echoed_as_text(client, hostile):
    client.force_login(hostile["user"])
    search = reverse("inspector:search")
    for query in (
        {"field": f"customer_name={HOSTILE}"},
        {"type": HOSTILE, "stream": HOSTILE, "handler": HOSTILE},
        {"field": HOSTILE},  # not name=value: a form error, with the value echoed
        {"since": HOSTILE},
    ):
        for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
            response = client.get(search, query, **headers)
            assert response.status_code in (200, 400)
            assert assert_html_escaped(response.content.decode(), query)


def test_hostile_payloads_are_text_on_the_admins_pages(admin_client, hostile):
    shown = [check(admin_client, url)[1] for url in admin_urls(hostile)]
    assert sum(shown) >= 3  # a message's data, a run's error and traceback, the replay reason
