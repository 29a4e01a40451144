"""How the dashboard and the admin write durations, and cut long text.

Durations are stored in microseconds; people read milliseconds. `format_ms` writes them for
every page, each page with the rounding it has always shown:

- `READABLE` (the default; sequence diagrams): 0.93 ms, 12.4 ms, 1,204 ms;
- `ROWS` (run badges and the run tables): 0.93 ms, 12.34 ms, 1204 ms;
- `ONE_DECIMAL` (the admin): 0.9 ms, 12.3 ms, 1204.0 ms.
"""

# (below this many ms, format spec) steps; None: any larger value.
READABLE = ((10, ".2f"), (1000, ".1f"), (None, ",.0f"))
ROWS = ((100, ".2f"), (None, ".0f"))
ONE_DECIMAL = ((None, ".1f"),)


def format_ms(ms=None, *, us=None, rounding=READABLE, missing="—"):
    """A duration as people read it, from milliseconds or, with `us`, microseconds (how the
    store keeps them); `missing` when there is none."""
    if us is not None:
        ms = us / 1000
    if ms is None:
        return missing
    for below, spec in rounding:
        if below is None or abs(ms) < below:
            return f"{ms:{spec}} ms"
    raise ValueError(f"{rounding!r} has no step for {ms}")


def format_age(seconds):
    """12 s, 4 min, 3.0 h, 2.0 d: how long the oldest unfinished run has waited."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def clip(text, limit):
    """`text` on one line, cut to `limit` characters with an ellipsis."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
