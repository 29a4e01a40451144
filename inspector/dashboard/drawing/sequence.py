"""Sequence diagrams of real flows as inline SVG, drawn on the server.

`render_svg` takes a `Flow` from `inspector.dashboard.flows.build_flow`;
`inspector.dashboard.drawing.mermaid` writes the same participants and arrows, in the same
order, as Mermaid text. Every piece of text is escaped: payloads and error messages come
from users and handlers.
"""

import hashlib

from inspector.dashboard.drawing.svg import (
    FONT,
    FONT_FAMILY,
    HEAD_FONT,
    MUTED,
    SMALL,
    TEXT,
    attr,
    esc,
    num,
    text_width,
)
from inspector.dashboard.flows import COMMAND, COMMAND_HANDLER, EVENT_HANDLER, EVENT_STORE
from inspector.dashboard.formatting import clip, format_ms

PAD = 14  # space between an arrow label and the lanes it joins
BADGE = 9  # radius of the step number at an arrow's start
LOOP = 28  # how far a self-arrow reaches right of its lane
ERROR_CHARS = 110  # error text shown with a failed run (and in Mermaid); all of it in <title>

LIFELINE = "#cbd5e1"

# Stroke colours by step kind, then by run status (the status wins).
KIND_COLOURS = {
    "command": "#1d4ed8",
    "raise": "#475569",
    "persist": "#475569",
    "append": "#6d28d9",
    "deliver": "#0f766e",
    "run": "#15803d",
}
STATUS_COLOURS = {
    "failed": "#dc2626",
    "dead": "#7f1d1d",
    "pending": "#b45309",
    "running": "#2563eb",
    "resolved": "#6b7280",
}
STATUS_FILLS = {
    "succeeded": "#dcfce7",
    "failed": "#fee2e2",
    "dead": "#fecaca",
    "pending": "#fef3c7",
    "running": "#dbeafe",
    "resolved": "#f3f4f6",
}
PARTICIPANT_FILLS = {
    COMMAND: ("#dbeafe", "#3b82f6"),
    COMMAND_HANDLER: ("#e0e7ff", "#6366f1"),
    EVENT_STORE: ("#ede9fe", "#7c3aed"),
    EVENT_HANDLER: ("#ccfbf1", "#0d9488"),
}
AGGREGATE_FILL = ("#fef9c3", "#ca8a04")
NOTE_FILLS = {
    "replayed": ("#e0f2fe", "#0284c7"),
    "resolved": ("#f3f4f6", "#6b7280"),
}
NOTE_FILL = ("#fefce8", "#ca8a04")
DASHED = ("pending", "running")  # runs still waiting: dashed arrows, here and in Mermaid


class _Layout:
    """Lane positions and row heights, computed from the widths of the labels."""

    def __init__(self, flow):
        self.flow = flow
        self.participants = flow.participants
        self.index = {p.key: i for i, p in enumerate(self.participants)}
        self.boxes = [
            max(
                text_width(p.label, HEAD_FONT, bold=True),
                text_width(p.kind_label, SMALL),
                64,
            )
            + 24
            for p in self.participants
        ]
        times = [format_ms(step.at_ms) for step in flow.steps]
        self.axis_width = max([text_width(t, SMALL) for t in times] + [text_width("ms", SMALL)])
        self.axis_x = 16 + self.axis_width  # right edge of the time labels
        self.left = self.axis_x + 22
        self._place_lanes()
        self._place_rows()

    def _place_lanes(self):
        n = len(self.participants)
        gaps = [(self.boxes[i] + self.boxes[i + 1]) / 2 + 24 for i in range(n - 1)]
        right_extra = 0.0
        needs = []
        for step in self.flow.steps:
            a, b = self.index[step.source], self.index[step.target]
            if step.kind == "note":
                continue
            if a == b:
                need = LOOP + 8 + text_width(step.label) + 16
                if a == n - 1:
                    right_extra = max(right_extra, need - self.boxes[a] / 2)
                else:
                    needs.append((a, a + 1, need))
            else:
                lo, hi = min(a, b), max(a, b)
                needs.append((lo, hi, text_width(step.label) + 2 * PAD + 2 * BADGE + 8))
        # Shortest spans first: widening a gap never breaks a constraint already met.
        for lo, hi, need in sorted(needs, key=lambda c: (c[1] - c[0], c[2])):
            have = sum(gaps[lo:hi])
            if have < need:
                extra = (need - have) / (hi - lo)
                for k in range(lo, hi):
                    gaps[k] += extra
        self.x = []
        x = self.left + (self.boxes[0] / 2 if self.boxes else 0)
        for i in range(n):
            self.x.append(x)
            if i < n - 1:
                x += gaps[i]
        last = (self.x[-1] + self.boxes[-1] / 2) if self.x else self.left + 200
        self.width = max(last + max(right_extra, 0) + 16, self.left + 240)

    def _place_rows(self):
        self.head_top = 12
        self.head_height = 40
        y = self.head_top + self.head_height + 18
        self.rows = []
        for step in self.flow.steps:
            if step.kind == "note":
                height = 30
            elif step.is_self:
                height = 44 if step.error else 32
            else:
                height = 32
            self.rows.append(y)
            y += height
        self.bottom = y + 8
        # Error lines and notes may reach past the last lane: make room for them.
        for step, row in zip(self.flow.steps, self.rows, strict=True):
            del row
            x = self.x[self.index[step.source]]
            if step.kind == "note":
                reach = x + (text_width(step.label) + 20) / 2
            elif step.is_self:
                reach = x + LOOP + 8 + text_width(step.label)
                if step.error:
                    reach = max(reach, x + LOOP + 8 + text_width(clip(step.error, ERROR_CHARS)))
            else:
                continue
            self.width = max(self.width, reach + 16)
        self.legend_y = self.bottom + 14
        self.height = self.legend_y + 16

    def arrow_y(self, i):
        return self.rows[i] + 21


def render_svg(flow, *, title=None):
    """The flow as a standalone, inline-able `<svg>` element (a string)."""
    if not flow.participants:
        return _empty_svg(title or "No messages to draw")
    lay = _Layout(flow)
    # Marker ids must not clash between two diagrams on one page.
    seed = f"{flow.correlation_id}:{flow.focus_id}:{flow.depth}".encode(errors="replace")
    uid = "sd" + hashlib.sha1(seed, usedforsecurity=False).hexdigest()[:8]
    title = title or _flow_title(flow)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sequence-diagram" role="img" '
        f'width="{num(lay.width)}" height="{num(lay.height)}" '
        f'viewBox="0 0 {num(lay.width)} {num(lay.height)}" '
        f'font-family={attr(FONT_FAMILY)} font-size="{FONT}" fill="{TEXT}" '
        f"data-correlation={attr(flow.correlation_id)}>",
        f"<title>{esc(title)}</title>",
        _defs(uid),
        f'<rect class="background" x="0" y="0" width="{num(lay.width)}" '
        f'height="{num(lay.height)}" fill="#ffffff"/>',
    ]
    out.append(_axis(lay))
    out.append(_lifelines(lay))
    out.append(_activations(lay))
    out.append(_headers(lay))
    number = 0
    for i, step in enumerate(flow.steps):
        if step.kind == "note":
            out.append(_note(lay, i, step))
        else:
            number += 1
            out.append(_arrow(lay, i, step, number, uid))
    out.append(_legend(lay))
    out.append("</svg>")
    return "\n".join(part for part in out if part)


def _flow_title(flow):
    what = f"message {flow.focus_id}" if flow.focus_id else f"correlation {flow.correlation_id}"
    return f"Sequence diagram of {what}"


def _empty_svg(text):
    width = text_width(text) + 32
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sequence-diagram empty" role="img" '
        f'width="{num(width)}" height="40" viewBox="0 0 {num(width)} 40" '
        f'font-family={attr(FONT_FAMILY)} font-size="{FONT}">'
        f"<title>{esc(text)}</title>"
        f'<text x="16" y="24" fill="{MUTED}">{esc(text)}</text></svg>'
    )


def _defs(uid):
    heads = []
    for name, colour in {**KIND_COLOURS, **STATUS_COLOURS}.items():
        heads.append(
            f'<marker id="{uid}-{name}" viewBox="0 0 10 10" refX="9" refY="5" '
            f'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
            f'<path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
        )
    for name in ("failed", "dead"):
        heads.append(
            f'<marker id="{uid}-x-{name}" viewBox="0 0 10 10" refX="5" refY="5" '
            f'markerWidth="9" markerHeight="9" orient="auto">'
            f'<path d="M1,1 L9,9 M9,1 L1,9" stroke="{STATUS_COLOURS[name]}" '
            f'stroke-width="2"/></marker>'
        )
    return "<defs>" + "".join(heads) + "</defs>"


def _axis(lay):
    x = lay.axis_x
    top = lay.head_top + lay.head_height + 4
    parts = [
        '<g class="time-axis">',
        "<title>Milliseconds after the first message of this flow</title>",
        f'<text x="{num(x)}" y="{num(top + 4)}" text-anchor="end" font-size="{SMALL}" '
        f'fill="{MUTED}">ms</text>',
        f'<line x1="{num(x + 8)}" y1="{num(top + 10)}" x2="{num(x + 8)}" '
        f'y2="{num(lay.bottom)}" stroke="{LIFELINE}"/>',
    ]
    for i, step in enumerate(lay.flow.steps):
        y = lay.arrow_y(i) if not step.is_self else lay.rows[i] + 14
        if step.kind == "note":
            y = lay.rows[i] + 15
        parts.append(
            f'<g class="tick"><line x1="{num(x + 4)}" y1="{num(y)}" x2="{num(x + 12)}" '
            f'y2="{num(y)}" stroke="{LIFELINE}"/>'
            f'<text x="{num(x)}" y="{num(y + 4)}" text-anchor="end" font-size="{SMALL}" '
            f'fill="{MUTED}">{esc(format_ms(step.at_ms))}</text></g>'
        )
    parts.append("</g>")
    return "".join(parts)


def _lifelines(lay):
    top = lay.head_top + lay.head_height
    return "".join(
        f'<line class="lifeline" x1="{num(x)}" y1="{num(top)}" x2="{num(x)}" '
        f'y2="{num(lay.bottom)}" stroke="{LIFELINE}" stroke-dasharray="4 4"/>'
        for x in lay.x
    )


def _headers(lay):
    parts = []
    for p, x, w in zip(lay.participants, lay.x, lay.boxes, strict=True):
        fill, stroke = PARTICIPANT_FILLS.get(p.kind, AGGREGATE_FILL)
        top = lay.head_top
        parts.append(
            f"<g class={attr(f'participant {p.kind}')} data-key={attr(p.key)}>"
            f"<title>{esc(f'{p.label} ({p.kind_label}): {p.detail}')}</title>"
            f'<rect x="{num(x - w / 2)}" y="{top}" width="{num(w)}" '
            f'height="{lay.head_height}" rx="6" fill="{fill}" stroke="{stroke}"/>'
            f'<text class="name" x="{num(x)}" y="{top + 18}" text-anchor="middle" '
            f'font-size="{HEAD_FONT}" font-weight="bold">{esc(p.label)}</text>'
            f'<text class="kind" x="{num(x)}" y="{top + 33}" text-anchor="middle" '
            f'font-size="{SMALL}" fill="{MUTED}">{esc(p.kind_label)}</text></g>'
        )
    return "".join(parts)


def _activations(lay):
    """A bar on a handler's lifeline from its run to the last thing that run did."""
    steps = lay.flow.steps
    parts = []
    for i, step in enumerate(steps):
        if step.kind != "run" or step.status in DASHED:
            continue
        x = lay.x[lay.index[step.source]]
        end = lay.rows[i] + 22
        for j in range(i + 1, len(steps)):
            other = steps[j]
            if other.run_id == step.run_id and other.source == step.source and other.is_arrow:
                if other.kind == "run":  # the next attempt of the same run
                    break
                end = lay.arrow_y(j) + 4
        fill = STATUS_FILLS.get(step.status, "#f3f4f6")
        stroke = STATUS_COLOURS.get(step.status, KIND_COLOURS["run"])
        parts.append(
            f'<rect class={attr(f"activation {step.status}")} x="{num(x - 4)}" '
            f'y="{num(lay.rows[i] + 4)}" width="8" height="{num(end - lay.rows[i] - 4)}" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="0.8"/>'
        )
    return "".join(parts)


def _arrow(lay, i, step, number, uid):
    colour = STATUS_COLOURS.get(step.status) or KIND_COLOURS.get(step.kind, "#475569")
    if step.kind == "run" and step.failed:
        marker = f"{uid}-x-{step.status}"  # a cross where the handler gave up
    else:
        marker = f"{uid}-{step.status if step.status in STATUS_COLOURS else step.kind}"

    dash = ' stroke-dasharray="5 4"' if step.status in DASHED else ""
    classes = " ".join(c for c in ("arrow", step.kind, step.status, _failed(step)) if c)
    x1 = lay.x[lay.index[step.source]]
    x2 = lay.x[lay.index[step.target]]
    detail = step.detail or step.label
    at = format_ms(step.at_ms)
    parts = [
        f'<g class={attr(classes)} data-step="{number}" data-kind={attr(step.kind)} '
        f"data-source={attr(step.source)} data-target={attr(step.target)}>",
        f"<title>{esc(f'{number}. {step.label} (at {at})' + chr(10) + detail)}</title>",
    ]
    if step.is_self:
        y1, y2 = lay.rows[i] + 8, lay.rows[i] + 20
        parts.append(
            f'<path d="M{num(x1 + 4)},{num(y1)} H{num(x1 + LOOP)} V{num(y2)} '
            f'H{num(x1 + 6)}" fill="none" stroke="{colour}" stroke-width="1.6"{dash} '
            f'marker-end="url(#{marker})"/>'
        )
        lx = x1 + LOOP + 8
        parts.append(_label(lx, lay.rows[i] + 18, step.label, colour, anchor="start"))
        if step.error:
            error = clip(step.error, ERROR_CHARS)
            parts.append(
                f'<rect x="{num(lx - 2)}" y="{num(lay.rows[i] + 22)}" '
                f'width="{num(text_width(error) + 4)}" height="15" fill="#ffffff" '
                f'opacity="0.85"/>'
                f'<text class="error" x="{num(lx)}" y="{num(lay.rows[i] + 33)}" '
                f'fill="{STATUS_COLOURS["failed"]}">{esc(error)}</text>'
            )
        badge_x, badge_y = x1, y1
    else:
        y = lay.arrow_y(i)
        direction = 1 if x2 > x1 else -1
        start = x1 + direction * (BADGE + 2)
        end = x2 - direction * 2
        parts.append(
            f'<line x1="{num(start)}" y1="{num(y)}" x2="{num(end)}" y2="{num(y)}" '
            f'stroke="{colour}" stroke-width="1.6"{dash} marker-end="url(#{marker})"/>'
        )
        parts.append(_label((x1 + x2) / 2, y - 6, step.label, colour, anchor="middle"))
        badge_x, badge_y = x1, y
    parts.append(
        f'<g class="num"><circle cx="{num(badge_x)}" cy="{num(badge_y)}" r="{BADGE}" '
        f'fill="#ffffff" stroke="{colour}"/>'
        f'<text x="{num(badge_x)}" y="{num(badge_y + 3.5)}" text-anchor="middle" '
        f'font-size="9" fill="{colour}">{number}</text></g>'
    )
    parts.append("</g>")
    return "".join(parts)


def _failed(step):
    return "failed" if step.failed and step.status != "failed" else ""


def _label(x, y, text, colour, *, anchor):
    fill = TEXT if colour in KIND_COLOURS.values() else colour
    return (
        f'<text class="label" x="{num(x)}" y="{num(y)}" text-anchor="{anchor}" '
        f'fill="{fill}">{esc(text)}</text>'
    )


def _note(lay, i, step):
    fill, stroke = NOTE_FILLS.get(step.status, NOTE_FILL)
    x = lay.x[lay.index[step.source]]
    width = text_width(step.label) + 20
    top = lay.rows[i] + 4
    classes = " ".join(c for c in ("note", step.status) if c)
    return (
        f"<g class={attr(classes)} data-source={attr(step.source)}>"
        f"<title>{esc(step.detail or step.label)}</title>"
        f'<rect x="{num(x - width / 2)}" y="{num(top)}" width="{num(width)}" height="20" '
        f'rx="3" fill="{fill}" stroke="{stroke}"/>'
        f'<text x="{num(x)}" y="{num(top + 14)}" text-anchor="middle">{esc(step.label)}</text>'
        "</g>"
    )


def _legend(lay):
    items = [
        ("succeeded", KIND_COLOURS["run"]),
        ("failed", STATUS_COLOURS["failed"]),
        ("dead", STATUS_COLOURS["dead"]),
        ("pending", STATUS_COLOURS["pending"]),
        ("running", STATUS_COLOURS["running"]),
    ]
    x = lay.left
    parts = ['<g class="legend">']
    for name, colour in items:
        parts.append(
            f'<rect x="{num(x)}" y="{num(lay.legend_y - 8)}" width="10" height="10" '
            f'rx="2" fill="{colour}"/>'
            f'<text x="{num(x + 14)}" y="{num(lay.legend_y + 1)}" font-size="{SMALL}" '
            f'fill="{MUTED}">{name}</text>'
        )
        x += 14 + text_width(name, SMALL) + 16
    if lay.flow.hidden_runs:
        runs = lay.flow.hidden_runs
        parts.append(
            f'<text x="{num(x + 8)}" y="{num(lay.legend_y + 1)}" font-size="{SMALL}" '
            f'fill="{MUTED}">{runs} handler run{"s" if runs != 1 else ""} below depth '
            f"{lay.flow.depth} not drawn</text>"
        )
    parts.append("</g>")
    return "".join(parts)
