"""Websocket test helpers shared by the inspector's feed tests and the shop's live tests."""

import time

from django.test import Client


def session_cookie(user):
    """The Cookie header of a logged-in session of `user`."""
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def receive_until(ws, predicate, timeout=5.0):
    """Collect frames until predicate(all text so far) holds; return the text."""
    text = ""
    deadline = time.monotonic() + timeout
    while not predicate(text):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out; received so far: {text[-2000:]}")
        try:
            text += await ws.receive_from(timeout=remaining)
        except TimeoutError:
            continue
    return text


async def drain_frames(ws, quiet=0.5):
    """Everything that arrives until the socket stays quiet for `quiet` seconds."""
    text = ""
    while not await ws.receive_nothing(timeout=quiet):
        text += await ws.receive_from()
    return text
