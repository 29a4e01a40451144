"""ASGI entry point for the inspector's tests: HTTP through Django, the inspector's websocket
routes through Channels (staff sessions only)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from inspector.routing import (  # noqa: E402
    AuthMiddlewareStack,
    unknown_websocket_path,
    websocket_urlpatterns,
)
from inspector.workers.embedded import start_embedded_worker  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([*websocket_urlpatterns, unknown_websocket_path]))
        ),
    }
)
start_embedded_worker()
