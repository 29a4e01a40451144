"""The workflow map: the domain registry drawn left to right as inline SVG.

Commands → command handlers → aggregates → events → event handlers → the aggregates those
handlers write. Every node is sized from its measured label, columns never overlap, and
nodes in a column are placed as near as they can be to the nodes that feed them without
touching (an isotonic regression per column). Handlers carry live run counts.
"""

from dataclasses import dataclass, field

from inspector.dashboard.drawing.sequence import AGGREGATE_FILL, PARTICIPANT_FILLS, STATUS_COLOURS
from inspector.dashboard.drawing.svg import (
    FONT,
    FONT_FAMILY,
    MUTED,
    SMALL,
    TEXT,
    attr,
    esc,
    num,
    text_width,
)
from inspector.dashboard.flows import COMMAND, COMMAND_HANDLER, EVENT_HANDLER, EVENT_STORE
from inspector.runtime.names import short_handler

COLUMNS = (
    "Commands",
    "Command handlers",
    "Aggregates",
    "Events",
    "Event handlers",
    "Aggregates written",
)
COMMANDS, COMMAND_HANDLERS, AGGREGATES, EVENTS, EVENT_HANDLERS, WRITTEN = range(6)

MARGIN = 16
HEADER = 40  # room for the column titles
PAD_X = 12
GAP_X = 76  # between columns, where the edges run
GAP_Y = 12
NODE_H = 30
HANDLER_H = 46
EDGE = "#94a3b8"
EVENT_FILL = PARTICIPANT_FILLS[EVENT_STORE]
FILLS = {
    COMMANDS: PARTICIPANT_FILLS[COMMAND],
    COMMAND_HANDLERS: PARTICIPANT_FILLS[COMMAND_HANDLER],
    AGGREGATES: AGGREGATE_FILL,
    EVENTS: EVENT_FILL,
    EVENT_HANDLERS: PARTICIPANT_FILLS[EVENT_HANDLER],
    WRITTEN: AGGREGATE_FILL,
}
KINDS = ("command", "command-handler", "aggregate", "event", "event-handler", "written")


@dataclass
class Node:
    key: str
    column: int
    label: str
    title: str
    href: str = ""
    counts: dict | None = None  # handlers: processed, failed, pending, paused
    x: float = 0.0
    y: float = 0.0
    width: float = 0.0
    order: float = 0.0

    @property
    def height(self):
        return HANDLER_H if self.counts is not None else NODE_H

    @property
    def centre_y(self):
        return self.y + self.height / 2

    @property
    def counts_text(self):
        if self.counts is None:
            return ""
        text = (
            f"{self.counts['processed']} processed · {self.counts['failed']} failed · "
            f"{self.counts['pending']} pending"
        )
        return text + (" · paused" if self.counts.get("paused") else "")


@dataclass
class Edge:
    source: str
    target: str
    title: str
    observed: bool = True  # False: declared (part_of) but not seen in any run


@dataclass
class Graph:
    columns: list = field(default_factory=lambda: [[] for _ in COLUMNS])
    edges: list = field(default_factory=list)
    nodes: dict = field(default_factory=dict)

    def add(self, node):
        if node.key not in self.nodes:
            self.nodes[node.key] = node
            self.columns[node.column].append(node)
        return self.nodes[node.key]

    def link(self, source, target, title, *, observed=True):
        known = source in self.nodes and target in self.nodes
        if known and not any(e.source == source and e.target == target for e in self.edges):
            self.edges.append(Edge(source, target, title, observed))


def build_graph(domain, *, counts=None, written=None, paused=(), link=None):
    """The registry as columns of nodes and edges.

    counts: {handler: {status: runs}}; written: {handler: {stream category}} seen in its
    runs' raised messages; link(kind, value) → an href or "".
    """
    counts = counts or {}
    written = written or {}
    link = link or (lambda kind, value: "")
    graph = Graph()
    handlers = domain.handlers()
    category_of = {agg: domain.stream_category(agg) for agg in domain.aggregates}
    aggregate_named = {category: agg for agg, category in category_of.items()}

    def handler_node(spec, column):
        by_status = counts.get(spec.name, {})
        handles = ", ".join(cls.__name__ for cls in spec.methods)
        return Node(
            key=f"handler:{spec.name}",
            column=column,
            label=short_handler(spec.name),
            title=f"{spec.name} handles {handles}",
            href=link("handler", spec.name),
            counts={
                "processed": by_status.get("succeeded", 0),
                "failed": by_status.get("failed", 0) + by_status.get("dead", 0),
                "pending": by_status.get("pending", 0) + by_status.get("running", 0),
                "paused": spec.name in paused,
            },
        )

    def aggregate_node(category, column):
        aggregate = aggregate_named.get(category)
        prefix = "aggregate" if column == AGGREGATES else "written"
        return Node(
            key=f"{prefix}:{category}",
            column=column,
            label=aggregate.__name__ if aggregate else category,
            title=f"{aggregate.__name__ if aggregate else 'Stream category'} ({category})",
            href=link("category", category),
        )

    for aggregate in domain.aggregates:
        graph.add(aggregate_node(category_of[aggregate], AGGREGATES))
    for spec in handlers:
        if spec.kind != "command_handler":
            continue
        node = graph.add(handler_node(spec, COMMAND_HANDLERS))
        for command in spec.methods:
            graph.add(
                Node(
                    key=f"command:{command._type}",
                    column=COMMANDS,
                    label=command.__name__,
                    title=command._type,
                    href=link("type", command._type),
                )
            )
            graph.link(f"command:{command._type}", node.key, f"{command.__name__} is handled by")
        if spec.part_of in category_of:
            graph.link(node.key, f"aggregate:{category_of[spec.part_of]}", "changes")
    for command in domain.commands:  # a command nobody handles still belongs on the map
        graph.add(
            Node(
                key=f"command:{command._type}",
                column=COMMANDS,
                label=command.__name__,
                title=f"{command._type} (no handler)",
                href=link("type", command._type),
            )
        )
    for event in domain.events:
        key = f"event:{event._type}"
        graph.add(
            Node(
                key=key,
                column=EVENTS,
                label=event.__name__,
                title=event._type,
                href=link("type", event._type),
            )
        )
        if event._part_of in category_of:
            graph.link(f"aggregate:{category_of[event._part_of]}", key, "raises")
    for spec in handlers:
        if spec.kind != "event_handler":
            continue
        node = graph.add(handler_node(spec, EVENT_HANDLERS))
        for event in spec.methods:
            where = f" from {spec.stream_category}" if spec.stream_category else ""
            graph.link(f"event:{event._type}", node.key, f"delivered{where}")
        seen = set(written.get(spec.name, ()))
        declared = category_of.get(spec.part_of)
        for category in sorted(seen | ({declared} if declared else set())):
            target = graph.add(aggregate_node(category, WRITTEN))
            observed = category in seen
            title = "writes (seen in its runs)" if observed else "part of (declared)"
            graph.link(node.key, target.key, title, observed=observed)
    _order(graph)
    return graph


def _order(graph):
    """Order each column by the mean order of what it links to, so edges cross less."""
    incoming, outgoing = {}, {}
    for edge in graph.edges:
        incoming.setdefault(edge.target, []).append(edge.source)
        outgoing.setdefault(edge.source, []).append(edge.target)

    def sort(nodes, links):
        def key(item):
            i, node = item
            orders = [graph.nodes[k].order for k in links.get(node.key, [])]
            return (sum(orders) / len(orders), i) if orders else (float("inf"), i)

        nodes[:] = [node for _, node in sorted(enumerate(nodes), key=key)]
        for i, node in enumerate(nodes):
            node.order = i

    for i, node in enumerate(graph.columns[COMMAND_HANDLERS]):  # registry order
        node.order = i
    for column in (AGGREGATES, EVENTS, EVENT_HANDLERS, WRITTEN):
        sort(graph.columns[column], incoming)
    sort(graph.columns[COMMANDS], outgoing)


# Layout -------------------------------------------------------------------------------------


def _isotonic(targets, weights):
    """Pool adjacent violators: the non-decreasing sequence nearest to `targets`."""
    blocks = []  # [mean, weight, count]
    for target, weight in zip(targets, weights, strict=True):
        blocks.append([target, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            w = w1 + w2
            blocks.append([(m1 * w1 + m2 * w2) / w, w, c1 + c2])
    out = []
    for mean, _, count in blocks:
        out.extend([mean] * count)
    return out


def _place_column(nodes, desired):
    """Tops for `nodes` (in order) nearest to `desired` centres, at least GAP_Y apart."""
    offsets, offset = [], 0.0
    for node in nodes:
        offsets.append(offset)
        offset += node.height + GAP_Y
    targets, weights = [], []
    previous = None
    for node, want, off in zip(nodes, desired, offsets, strict=True):
        if want is None:  # nothing to line up with: sit just below the previous node
            want = (previous if previous is not None else 0.0) + node.height / 2
            weight = 0.01
        else:
            weight = 1.0
        targets.append(want - node.height / 2 - off)
        weights.append(weight)
        previous = want + node.height / 2 + GAP_Y
    for node, z, off in zip(nodes, _isotonic(targets, weights), offsets, strict=True):
        node.y = z + off


def _layout(graph):
    incoming, outgoing = {}, {}
    for edge in graph.edges:
        incoming.setdefault(edge.target, []).append(edge.source)
        outgoing.setdefault(edge.source, []).append(edge.target)

    def mean_centre(keys):
        if not keys:
            return None
        return sum(graph.nodes[k].centre_y for k in keys) / len(keys)

    y = 0.0
    for node in graph.columns[COMMANDS]:
        node.y = y
        y += node.height + GAP_Y
    # Sweep right, left, right: each column settles near its neighbours.
    for _ in range(2):
        for column in range(1, len(COLUMNS)):
            nodes = graph.columns[column]
            _place_column(nodes, [mean_centre(incoming.get(n.key)) for n in nodes])
        for column in range(len(COLUMNS) - 2, -1, -1):
            nodes = graph.columns[column]
            wants = [mean_centre(outgoing.get(n.key)) for n in nodes]
            if column > 0:
                wants = [
                    w if w is not None else mean_centre(incoming.get(n.key))
                    for n, w in zip(nodes, wants, strict=True)
                ]
            _place_column(nodes, wants)
    for column in range(1, len(COLUMNS)):
        nodes = graph.columns[column]
        _place_column(nodes, [mean_centre(incoming.get(n.key)) for n in nodes])

    tops = [n.y for n in graph.nodes.values()]
    shift = MARGIN + HEADER - (min(tops) if tops else 0)
    for node in graph.nodes.values():
        node.y += shift

    x = MARGIN
    widths = []
    for column, title in enumerate(COLUMNS):
        nodes = graph.columns[column]
        width = text_width(title, FONT, bold=True)
        for node in nodes:
            width = max(
                width,
                text_width(node.label, FONT, bold=True) + 2 * PAD_X,
                text_width(node.counts_text, SMALL) + 2 * PAD_X,
            )
        for node in nodes:
            node.x, node.width = x, width
        widths.append((x, width))
        x += width + GAP_X
    bottom = max((n.y + n.height for n in graph.nodes.values()), default=MARGIN + HEADER)
    return widths, x - GAP_X + MARGIN, bottom


def render_map_svg(graph, *, title="Workflow map"):
    """The graph as a standalone, inline-able `<svg>` element (a string)."""
    if not graph.nodes:
        width = text_width("No handlers registered") + 32
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="workflow-map empty" role="img" '
            f'width="{num(width)}" height="40" viewBox="0 0 {num(width)} 40" '
            f'font-family={attr(FONT_FAMILY)} font-size="{FONT}"><title>{esc(title)}</title>'
            f'<text x="16" y="24" fill="{MUTED}">No handlers registered</text></svg>'
        )
    columns, width, bottom = _layout(graph)
    legend_y = bottom + 28
    legend = [
        ("observed", "writes seen in its runs", ""),
        ("declared", "part of (declared)", ' stroke-dasharray="5 4"'),
    ]
    legend_width = sum(44 + text_width(text, SMALL) + 24 for _, text, _ in legend)
    width = max(width, MARGIN * 2 + legend_width)
    height = legend_y + 16
    # A picture with links in it is a group: an "img" hides its children from assistive
    # technology, so links inside one cannot be reached (axe: nested-interactive).
    role = "group" if any(node.href for node in graph.nodes.values()) else "img"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="workflow-map" role="{role}" '
        f'width="{num(width)}" height="{num(height)}" '
        f'viewBox="0 0 {num(width)} {num(height)}" font-family={attr(FONT_FAMILY)} '
        f'font-size="{FONT}" fill="{TEXT}">',
        f"<title>{esc(title)}</title>",
        '<defs><marker id="wm-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        f'fill="{EDGE}"/></marker></defs>',
        f'<rect class="background" x="0" y="0" width="{num(width)}" height="{num(height)}" '
        'fill="#ffffff"/>',
    ]
    for (x, w), name in zip(columns, COLUMNS, strict=True):
        out.append(
            f'<text class="column-title" x="{num(x + w / 2)}" y="{MARGIN + 14}" '
            f'text-anchor="middle" font-weight="bold" fill="{MUTED}">{esc(name)}</text>'
        )
    out.append('<g class="edges">')
    for edge in graph.edges:
        out.append(_edge(graph, edge))
    out.append("</g>")
    for node in graph.nodes.values():
        out.append(_node(node))
    x = MARGIN
    out.append('<g class="legend">')
    for cls, text, dash in legend:
        out.append(
            f'<line class="legend-{cls}" x1="{num(x)}" y1="{num(legend_y - 4)}" '
            f'x2="{num(x + 36)}" y2="{num(legend_y - 4)}" stroke="{EDGE}" stroke-width="1.5"'
            f'{dash} marker-end="url(#wm-arrow)"/>'
            f'<text class="legend-label" x="{num(x + 44)}" y="{num(legend_y)}" '
            f'font-size="{SMALL}" fill="{MUTED}">{esc(text)}</text>'
        )
        x += 44 + text_width(text, SMALL) + 24
    out.append("</g></svg>")
    return "\n".join(out)


def _edge(graph, edge):
    a, b = graph.nodes[edge.source], graph.nodes[edge.target]
    x1, y1 = a.x + a.width, a.centre_y
    x2, y2 = b.x - 2, b.centre_y
    bend = (x2 - x1) / 2
    dash = "" if edge.observed else ' stroke-dasharray="5 4"'
    return (
        f'<path class="edge" data-source={attr(edge.source)} data-target={attr(edge.target)} '
        f'd="M{num(x1)},{num(y1)} C{num(x1 + bend)},{num(y1)} {num(x2 - bend)},{num(y2)} '
        f'{num(x2)},{num(y2)}" fill="none" stroke="{EDGE}" stroke-width="1.5"{dash} '
        f'marker-end="url(#wm-arrow)"><title>{esc(a.label)} → {esc(b.label)}: '
        f"{esc(edge.title)}</title></path>"
    )


def _node(node):
    fill, stroke = FILLS[node.column]
    kind = KINDS[node.column]
    paused = node.counts is not None and node.counts.get("paused")
    dash = ' stroke-dasharray="4 3"' if paused else ""
    cx = node.x + node.width / 2
    label_y = node.y + (19 if node.counts is None else 18)
    parts = [
        f'<g class="node {kind}{" paused" if paused else ""}" data-key={attr(node.key)} '
        f'data-column="{node.column}"><title>{esc(node.title)}</title>',
        f'<rect x="{num(node.x)}" y="{num(node.y)}" width="{num(node.width)}" '
        f'height="{node.height}" rx="6" fill="{fill}" stroke="{stroke}"{dash}/>',
        f'<text class="label" x="{num(cx)}" y="{num(label_y)}" text-anchor="middle" '
        f'font-size="{FONT}" font-weight="bold">{esc(node.label)}</text>',
    ]
    if node.counts is not None:
        parts.append(_counts(node, cx))
    parts.append("</g>")
    body = "".join(parts)
    if node.href:
        return f"<a href={attr(node.href)}>{body}</a>"
    return body


def _counts(node, cx):
    c = node.counts
    failed = f' fill="{STATUS_COLOURS["failed"]}"' if c["failed"] else ""
    pending = f' fill="{STATUS_COLOURS["pending"]}"' if c["pending"] else ""
    paused = (
        f'<tspan class="paused" fill="{STATUS_COLOURS["pending"]}"> · paused</tspan>'
        if c.get("paused")
        else ""
    )
    return (
        f'<text class="counts" x="{num(cx)}" y="{num(node.y + 35)}" text-anchor="middle" '
        f'font-size="{SMALL}" fill="{MUTED}" data-processed="{c["processed"]}" '
        f'data-failed="{c["failed"]}" data-pending="{c["pending"]}">'
        f'<tspan class="processed">{c["processed"]} processed</tspan> · '
        f'<tspan class="failed"{failed}>{c["failed"]} failed</tspan> · '
        f'<tspan class="pending"{pending}>{c["pending"]} pending</tspan>{paused}</text>'
    )


__all__ = ["Edge", "Graph", "Node", "build_graph", "render_map_svg"]
