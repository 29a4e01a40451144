"""The app's websocket routes, for the host project's ASGI `URLRouter`."""

from django.urls import path

from inspector.dashboard.consumers import FeedConsumer

websocket_urlpatterns = [
    path("ws/inspector/feed/", FeedConsumer.as_asgi(), name="feed"),
]

# So that `reverse("feed", urlconf="inspector.routing")` gives a page its websocket's path.
urlpatterns = websocket_urlpatterns
