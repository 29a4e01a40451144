"""The app's websocket routes, for the host project's ASGI `URLRouter`."""

from channels.generic.websocket import AsyncWebsocketConsumer
from django.urls import path, re_path

from inspector.dashboard import feed
from inspector.dashboard.consumers import FeedConsumer


class UnknownPathConsumer(AsyncWebsocketConsumer):
    """Refuses the handshake (403): channels' `URLRouter` raises for a path no route
    matches, which daphne answers with a 500 and a traceback in its log."""

    channel_layer_alias = feed.NO_CHANNEL_LAYER

    async def connect(self):
        await self.close()


websocket_urlpatterns = [
    path("ws/inspector/feed/", FeedConsumer.as_asgi(), name="feed"),
]

# The last of the host's websocket routes: every other path is refused cleanly.
unknown_websocket_path = re_path(r"", UnknownPathConsumer.as_asgi())

# So that `reverse("feed", urlconf="inspector.routing")` gives a page its websocket's path.
urlpatterns = websocket_urlpatterns
