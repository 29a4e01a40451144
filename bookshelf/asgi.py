"""ASGI entry point: HTTP through Django, websockets through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bookshelf.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from inspector.embedded import start_embedded_worker  # noqa: E402

application = ProtocolTypeRouter({"http": django_asgi_app})
start_embedded_worker()
