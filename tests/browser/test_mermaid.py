"""The Mermaid text the inspector offers ("Copy as Mermaid", diagram.mmd) parses with the real
Mermaid, in Chromium, however hostile the payloads and errors it shows; rendered, its labels
show that text as text.

Mermaid comes from npm, pinned, into tests/.node_modules (git-ignored) the first time; a
machine without npm or without the registry fails here rather than skipping the check.
"""

import contextlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.urls import reverse

from bookshelf.commands import AddBook, ConfirmOrder, PlaceOrder, ShipOrder
from inspector.dashboard.drawing.mermaid import render_mermaid
from inspector.dashboard.flows import Flow, Participant, Step
from inspector.models import HandlerRun, Message, RunStatus
from inspector.services import handler_run_replay
from tests.browsers import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MERMAID_VERSION = "11.17.2"
NODE_MODULES = Path(__file__).resolve().parents[1] / ".node_modules"
BUNDLE = NODE_MODULES / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
# Everything that means something to HTML, SVG, XML or Mermaid, and a line break.
HOSTILE = "<script>alert(1)</script> </svg> \"dq\" 'sq' ]]> --> a;b #c %%d {e} f\ng end"


def installed_version():
    package = BUNDLE.parents[1] / "package.json"
    return json.loads(package.read_text())["version"] if package.exists() else None


@pytest.fixture(scope="session")
def mermaid_bundle():
    """Mermaid's browser bundle, installed with npm at the pinned version when missing."""
    if installed_version() != MERMAID_VERSION:
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is missing: apt-get install npm (make test installs it)")
        subprocess.run(
            [npm, "install", "--prefix", str(NODE_MODULES), "--no-save", "--no-audit"]
            + ["--no-fund", "--loglevel=error", f"mermaid@{MERMAID_VERSION}"],
            check=True,
            timeout=600,
        )
    assert installed_version() == MERMAID_VERSION
    return BUNDLE


PARSE_AND_RENDER = """async ([text, id]) => {
    mermaid.initialize({startOnLoad: false, securityLevel: "strict"});
    try {
        const parsed = await mermaid.parse(text);
        const {svg} = await mermaid.render(id, text);
        const doc = new DOMParser().parseFromString(svg, "image/svg+xml");
        return {
            type: parsed.diagramType,
            labels: Array.from(doc.querySelectorAll("text"), (t) => t.textContent),
            scripts: doc.getElementsByTagName("script").length,
            broken: doc.getElementsByTagName("parsererror").length,
        };
    } catch (error) {
        return {error: String((error && error.message) || error)};
    }
}"""


@contextlib.contextmanager
def mermaid_in_chromium(bundle):
    """A function that parses and renders Mermaid text in Chromium: the diagram's type, the
    text of its labels, and how many <script> elements its SVG has."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors = []
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.add_script_tag(path=str(bundle))
            drawn = iter(range(1_000_000))

            def parse(text):
                result = page.evaluate(PARSE_AND_RENDER, [text, f"diagram-{next(drawn)}"])
                assert "error" not in result, f"{result['error']}\n{text}"
                return result

            yield parse
            assert errors == []
        finally:
            browser.close()


STATEMENT = re.compile(
    r"^    (?:participant P\d+ as |Note over P\d+: |P\d+(?:->>|-->>|-x)P\d+: )(?P<label>.+)$"
)


def words(text):
    return " ".join(text.split())


@pytest.fixture
def hostile_flow(domain, admin_user):
    """A shipped order whose customer, book and replay reason are hostile text: its stock run
    fails with the book's title in its error, and was replayed with a hostile reason."""
    book_id = domain.process(AddBook(title=HOSTILE, author=HOSTILE, price_amount=9.99))
    order_id = domain.process(
        PlaceOrder(customer_name=HOSTILE, items=[{"book_id": str(book_id), "quantity": 12}])
    )
    domain.process(ConfirmOrder(order_id=str(order_id)))
    domain.process(ShipOrder(order_id=str(order_id)))
    failed = HandlerRun.objects.get(status=RunStatus.FAILED)
    handler_run_replay(run=failed, user=admin_user, reason=HOSTILE)
    return Message.objects.get(pk=failed.message_id)


def test_hostile_mermaid_text_parses_and_shows_the_payload_as_text(
    mermaid_bundle, admin_client, hostile_flow, domain, add_book
):
    ordinary = add_book(title="Dune", author="Frank Herbert")
    order_id = domain.process(
        PlaceOrder(customer_name="Alice", items=[{"book_id": str(ordinary.id), "quantity": 1}])
    )
    ordinary_event = Message.objects.get(
        type="bookshelf.OrderPlaced.v1", data__order_id=str(order_id)
    )
    texts = {
        "message": reverse("inspector:message-mermaid", args=[hostile_flow.id]),
        "flow": reverse("inspector:flow-mermaid", args=[hostile_flow.correlation_id]),
        "ordinary": reverse("inspector:message-mermaid", args=[ordinary_event.id]),
    }
    for name, url in texts.items():
        response = admin_client.get(url)
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/plain")
        texts[name] = response.content.decode()
    # Text in every place a label can be: participants, messages, notes, errors.
    texts["drawn"] = render_mermaid(
        Flow(
            correlation_id=HOSTILE,
            participants=[
                Participant(key="a", kind="command", label=HOSTILE),
                Participant(key="b", kind="store", label=f"end {HOSTILE}"),
            ],
            steps=[
                Step("command", "a", "b", HOSTILE, 0.0),
                Step("run", "b", "a", HOSTILE, 1.0, status="dead", error=HOSTILE),
                Step("note", "b", "b", HOSTILE, 2.0),
            ],
        )
    )
    for name in ("message", "flow", "drawn"):
        lines = texts[name].splitlines()
        assert lines[:2] == ["sequenceDiagram", "    autonumber"], name
        for line in lines[2:]:  # one statement a line; labels hold only entity codes
            statement = STATEMENT.match(line)
            assert statement, line
            assert not re.search(r"[#;%<>&\"{}\\]", re.sub(r"#\d+;", "", statement["label"])), line

    with mermaid_in_chromium(mermaid_bundle) as parse:
        drawn = {name: parse(text) for name, text in texts.items()}

    for name, result in drawn.items():
        assert result["type"] == "sequence", name
        assert result["scripts"] == 0 and result["broken"] == 0, name
    # Shown as text: whole where the drawing has room, else its start (a replay's reason and a
    # run's error are clipped; the error quotes the title as Python's repr does).
    assert any(words(HOSTILE) in words(label) for label in drawn["drawn"]["labels"])
    start = HOSTILE[: HOSTILE.index("'")]
    for name in ("message", "flow"):
        assert sum(start in label for label in drawn[name]["labels"]) >= 2, name
    assert any("Dune" in label or "OrderPlaced" in label for label in drawn["ordinary"]["labels"])
