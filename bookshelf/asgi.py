"""ASGI entry point: HTTP through Django, websockets through Channels (staff sessions only)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bookshelf.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from bookshelf.routing import websocket_urlpatterns  # noqa: E402
from inspector.routing import AuthMiddlewareStack  # noqa: E402
from inspector.workers.embedded import start_embedded_worker  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
start_embedded_worker()
