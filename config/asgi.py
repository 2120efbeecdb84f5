"""HTTP through Django (bodies capped and given a Content-Length first, see config.bodies),
except /mcp, the MCP server of the org's orchestrations (runs.api.mcp_endpoint, its own bearer
auth); websockets through Channels with session auth and an Origin check for sockets that rely
on the session (core.websockets)."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from config.bodies import BodyLimitASGI  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402
from config.startup import freeze_loaded_objects  # noqa: E402
from core.websockets import OriginCheck  # noqa: E402
from runs.api.mcp_endpoint import mcp_app  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": URLRouter(
            # ASGI apps, as Channels' URLRouter takes them; django-stubs types re_path for views.
            [
                re_path(r"^mcp/?$", mcp_app),  # type: ignore[arg-type, list-item]
                re_path(r"", BodyLimitASGI(django_asgi_app)),  # type: ignore[arg-type, list-item]
            ]
        ),
        "websocket": OriginCheck(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
freeze_loaded_objects()
