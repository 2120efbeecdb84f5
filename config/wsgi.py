"""The WSGI application (gunicorn): Django, with bodies sent without Content-Length capped and
made readable first (see config.bodies)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_wsgi_app = get_wsgi_application()

from django.urls import get_resolver  # noqa: E402

from config.bodies import BodyLimitWSGI  # noqa: E402
from config.startup import freeze_loaded_objects  # noqa: E402

application = BodyLimitWSGI(django_wsgi_app)
get_resolver().url_patterns  # noqa: B018  # loaded now, to be frozen with the rest
freeze_loaded_objects()
