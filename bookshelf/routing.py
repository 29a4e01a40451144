"""Every websocket route of the project."""

from django.urls import path

from bookshelf.consumers import ShopConsumer
from inspector.routing import unknown_websocket_path
from inspector.routing import websocket_urlpatterns as inspector_routes

websocket_urlpatterns = [
    *inspector_routes,
    path("ws/shop/", ShopConsumer.as_asgi()),
    unknown_websocket_path,  # last: any other path is refused (403), not an error
]
