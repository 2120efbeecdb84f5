"""The public page of a shared run output, `/s/<token>`: no login, the newest output version.

The output is a model's answer, so it is untrusted: markdown goes through the same sanitizing
renderer as every other page (raw HTML off, then nh3); JSON is shown as escaped text.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from core.rendering import json_text, value_html
from gallery.content_policy import public_page
from runs.services import outputs


@public_page
@never_cache
def shared_output(request: HttpRequest, token: str) -> HttpResponse:
    """Never cached, so revoking the link takes effect at once, even behind a proxy."""
    run = outputs.shared_run(token)
    if run is None:
        response = render(request, "gallery/shared_output.html", {"missing": True}, status=404)
    else:
        newest = outputs.newest_version(run)
        context: dict[str, Any] = {"run": run, "version": newest}
        if newest is not None and newest.output is not None:
            if newest.output_type == "json" or not isinstance(newest.output, str):
                context["output_json"] = json_text(newest.output)
            else:
                context["output_html"] = value_html(newest.output)
        response = render(request, "gallery/shared_output.html", context)
    # The token is the secret: links in the output must not carry it away in a Referer.
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex"
    return response
