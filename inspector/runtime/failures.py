"""Failure groups: which failed runs share one cause, worked out once, when the failure is
recorded (inspector/runtime/dispatch.py), never by reading tracebacks when a page is shown.

A group is the handler, the exception type, where the exception was raised (the innermost
frames of the application's own code) and the message with its particulars taken out. Two
runs that fail on "Not enough stock of 'Dune': 3 in stock, 5 requested" and on "Not enough
stock of 'Emma': 0 in stock, 1 requested" are one group; a different exception type, or the
same exception raised from another function, is another.

Everything here is a pure function of text, so the migration that groups the failed runs
recorded before groups existed reads the same stored traceback and gets the same key.
"""

import hashlib
import os
import re
import sysconfig
from pathlib import Path

import django

KEY_LENGTH = 32  # hex digits of the group key: 128 bits of a SHA-256
FRAMES = 3  # innermost frames of the application's own code that say where it was raised
MESSAGE_LIMIT = 2000  # characters of the message that count; a longer tail is one particular

# What is taken out of a message, in this order, and why: each is a particular of one run
# (which book, which order, how many), not of the cause.
PARTICULARS = (
    # Quoted text: names and titles ('Dune', "Alice"), what repr() puts in messages.
    (re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\""), "<str>"),
    # UUIDs: aggregate, message and run ids, with or without dashes.
    (
        re.compile(
            r"\b[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\b"
        ),
        "<id>",
    ),
    # Hex ids and addresses: 0x7f3a..., and runs of 8 or more hex digits with both a digit
    # and a letter among them (digests, object ids), which no English word or number is.
    (
        re.compile(
            r"\b0[xX][0-9a-fA-F]+\b"
            r"|\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"
        ),
        "<hex>",
    ),
    # Numbers, with their sign unless it joins a word (order-12): counts, amounts,
    # positions; dates and times digit group by digit group.
    (re.compile(r"(?:(?<![\w.])-)?\d+(?:[.,]\d+)*"), "<n>"),
)
WHITESPACE = re.compile(r"\s+")

TRACEBACK_START = "Traceback (most recent call last):"
FRAME = re.compile(r'^\s*File "(?P<path>[^"]*)", line \d+, in (?P<function>.+?)\s*$', re.M)


def normalise_message(message):
    """The message with quoted text, ids, hex digests and numbers replaced by placeholders
    (`<str>`, `<id>`, `<hex>`, `<n>`) and runs of whitespace made one space."""
    text = str(message)[:MESSAGE_LIMIT]
    for pattern, placeholder in PARTICULARS:
        text = pattern.sub(placeholder, text)
    return WHITESPACE.sub(" ", text).strip()


def _library_roots():
    """Folders whose code is not the application's: the standard library, installed
    packages, Django and the inspector itself (its dispatch frames are on every traceback)."""
    roots = {Path(django.__file__).parent, Path(__file__).resolve().parents[1]}
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(name)
        if path:
            roots.add(Path(path))
    return tuple(sorted(str(root) + os.sep for root in roots))


LIBRARY_ROOTS = _library_roots()


def _own_code(path):
    return not (
        path.startswith("<")  # <frozen importlib._bootstrap>, <string>
        or path.startswith(LIBRARY_ROOTS)
        or f"{os.sep}site-packages{os.sep}" in path
    )


def _where(path, function):
    """A frame as its file's last two path parts and function: stable across checkouts and
    releases (no absolute path) and across edits elsewhere in the file (no line number)."""
    parts = path.replace("\\", "/").split("/")
    return f"{'/'.join(parts[-2:])}:{function}"


def raising_frames(traceback_text, *, frames=FRAMES):
    """Where the exception was raised: the innermost `frames` frames of the application's own
    code in the last traceback of `traceback_text` (a chained exception's earlier tracebacks
    come first), or the innermost frame of any code when none is the application's."""
    text = str(traceback_text)
    start = text.rfind(TRACEBACK_START)
    found = [(m["path"], m["function"]) for m in FRAME.finditer(text[max(start, 0) :])]
    own = [frame for frame in found if _own_code(frame[0])]
    chosen = own[-frames:] if own else found[-1:]
    return [_where(path, function) for path, function in chosen]


def failure_group(*, handler, error_type, message, traceback_text):
    """The group key of one failure: hex digits of a digest of the handler, the exception
    type, where it was raised and the normalised message."""
    where = "\n".join(raising_frames(traceback_text))
    parts = (str(handler), str(error_type), where, normalise_message(message))
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:KEY_LENGTH]
