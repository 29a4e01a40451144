"""The app's websocket routes, for the host project's ASGI `URLRouter`."""

import asyncio

from asgiref.sync import sync_to_async
from channels import auth
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.contrib.auth.models import AnonymousUser
from django.urls import path, re_path

from inspector.dashboard import feed
from inspector.dashboard.consumers import FeedConsumer, LivePageConsumer
from inspector.runtime.connections import database_outage, lost_database


class AuthMiddleware(auth.AuthMiddleware):
    """channels' `AuthMiddleware` through a database outage: the session and the user are
    read from the database, and channels lets the error out of the handshake (a traceback),
    or the read waits for a connection psycopg's pool cannot make until daphne gives up on the
    handshake. While the database is away (known to be, or the read fails or does not answer
    within `HANDSHAKE_READ` seconds) the user is anonymous and the scope says so
    (`feed.DATABASE_AWAY`): the app's consumers accept the socket and read the user when the
    database is back (`feed.wait_out_database_outage`); the outage is logged once."""

    HANDSHAKE_READ = 2.0  # well inside daphne's 5 s for a handshake

    async def resolve_scope(self, scope):
        if database_outage.down:
            self._database_away(scope)
            return
        try:
            await asyncio.wait_for(super().resolve_scope(scope), self.HANDSHAKE_READ)
        except TimeoutError:
            self._database_away(scope)
        except Exception as error:
            if not await sync_to_async(lost_database)(error):
                raise
            self._database_away(scope)

    @staticmethod
    def _database_away(scope):
        scope["user"]._wrapped = AnonymousUser()
        scope[feed.DATABASE_AWAY] = True


def AuthMiddlewareStack(inner):  # noqa: N802 - channels' name, for the host's ASGI module
    """channels' `AuthMiddlewareStack` with the `AuthMiddleware` above."""
    return CookieMiddleware(SessionMiddleware(AuthMiddleware(inner)))


class UnknownPathConsumer(AsyncWebsocketConsumer):
    """Refuses the handshake (403): channels' `URLRouter` raises for a path no route
    matches, which daphne answers with a 500 and a traceback in its log."""

    channel_layer_alias = feed.NO_CHANNEL_LAYER

    async def connect(self):
        await self.close()


websocket_urlpatterns = [
    path("ws/inspector/feed/", FeedConsumer.as_asgi(), name="feed"),
    path("ws/inspector/page/", LivePageConsumer.as_asgi(), name="page-feed"),
]

# The last of the host's websocket routes: every other path is refused cleanly.
unknown_websocket_path = re_path(r"", UnknownPathConsumer.as_asgi())

# So that `reverse("feed", urlconf="inspector.routing")` gives a page its websocket's path.
urlpatterns = websocket_urlpatterns
