"""Sequence diagrams of real flows as Mermaid text.

`render_mermaid` takes the `Flow` that `inspector.dashboard.drawing.sequence.render_svg`
draws and writes the same participants and the same arrows, in the same order. Every piece
of text is escaped for Mermaid's syntax: payloads and error messages come from users and
handlers.
"""

import re

from inspector.dashboard.drawing.sequence import DASHED, ERROR_CHARS
from inspector.dashboard.drawing.svg import clean
from inspector.dashboard.formatting import clip

_MERMAID_UNSAFE = re.compile(r"[#;%<>&\"\\{}]")


def mermaid_text(text):
    """Text Mermaid shows as written: one line, with its syntax characters as #code; entities."""
    text = " ".join(clean(text).split())
    text = _MERMAID_UNSAFE.sub(lambda m: f"#{ord(m.group())};", text)
    # "wrap:" at the start of a label is a Mermaid directive; a zero-width space defuses it.
    if text.lower().startswith(("wrap:", "nowrap:")):
        text = "\u200b" + text
    return text or "\u200b"


def mermaid_arrow(step):
    if step.kind == "run" and step.failed:
        return "-x"
    if step.status in DASHED:
        return "-->>"
    return "->>"


def mermaid_message(step):
    """The text of a step's Mermaid message: its label, and the error of a failed run."""
    text = step.label
    if step.error:
        text += f" — {clip(step.error, ERROR_CHARS)}"
    return text


def render_mermaid(flow):
    """The flow as a Mermaid `sequenceDiagram`, with the SVG's participants and arrows."""
    alias = {p.key: f"P{i}" for i, p in enumerate(flow.participants, start=1)}
    lines = ["sequenceDiagram", "    autonumber"]
    for p in flow.participants:
        lines.append(f"    participant {alias[p.key]} as {mermaid_text(p.label)}")
    for step in flow.steps:
        source, target = alias[step.source], alias[step.target]
        if step.kind == "note":
            lines.append(f"    Note over {source}: {mermaid_text(step.label)}")
            continue
        lines.append(
            f"    {source}{mermaid_arrow(step)}{target}: {mermaid_text(mermaid_message(step))}"
        )
    return "\n".join(lines) + "\n"
