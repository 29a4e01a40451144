"""What every drawing is made with: fonts, text colours, escaping, numbers and text widths.

The sequence diagram, the workflow map and the sparklines are SVG strings built on the
server. Every piece of text goes through `esc` and every attribute value through `attr`:
payloads, names and error messages come from users and handlers.
"""

import re
from xml.sax.saxutils import escape, quoteattr

FONT_FAMILY = "'DejaVu Sans', Verdana, 'Segoe UI', sans-serif"
FONT = 12  # labels
HEAD_FONT = 13  # participant names
SMALL = 10.5  # participant kinds, the time axis, the legend

TEXT = "#1f2937"
MUTED = "#6b7280"

# Advance widths of DejaVu Sans (Verdana's metrics are close), in ems. DejaVu is wider than
# most sans-serif faces, so a label measured with it fits in whatever face the browser picks.
_WIDTHS = {
    **dict.fromkeys("ijlI|!'.,:;", 0.30),
    **dict.fromkeys("frt()[]{}/\\-`", 0.40),
    **dict.fromkeys('sczJ"', 0.53),
    **dict.fromkeys("abdeghknopquvxy_$0123456789?#*+=<>~^", 0.64),
    **dict.fromkeys("ALPSTFZEKXYBR", 0.70),
    **dict.fromkeys("CDGHNOQUV", 0.79),
    **dict.fromkeys("mw%&@", 0.98),
    **dict.fromkeys("MW", 1.0),
    " ": 0.32,
    "·": 0.32,
    "…": 1.0,
    "—": 1.0,
    "←": 0.84,
    "→": 0.84,
}
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def text_width(text, size=FONT, *, bold=False):
    """An upper estimate of how wide `text` is drawn at `size` px."""
    em = sum(_WIDTHS.get(ch, 1.0 if ord(ch) > 0x2E80 else 0.68) for ch in text)
    return em * size * (1.08 if bold else 1.0)


def clean(text):
    """Text XML can carry: control characters and lone surrogates become U+FFFD."""
    return _INVALID_XML.sub("\ufffd", str(text))


def esc(text):
    """`text` as the content of an element."""
    return escape(clean(text))


def attr(value):
    """`value` as an attribute value, quotes included."""
    return quoteattr(clean(value))


def num(value):
    """A coordinate or a length: one decimal at most, no trailing zeros (`12`, `12.5`)."""
    return f"{value:.1f}".rstrip("0").rstrip(".")
