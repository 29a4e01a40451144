from django.urls import path

from inspector.dashboard.consumers import FeedConsumer

websocket_urlpatterns = [
    path("ws/inspector/feed/", FeedConsumer.as_asgi()),
]
