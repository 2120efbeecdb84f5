"""The WSGI application (gunicorn): Django, with bodies sent without Content-Length capped and
made readable first (see config.bodies)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_wsgi_app = get_wsgi_application()

from config.bodies import BodyLimitWSGI  # noqa: E402

application = BodyLimitWSGI(django_wsgi_app)
