"""The Content-Security-Policy of the public pages (the gallery and shared outputs).

What they show was written by someone else: an orchestration's description, a model's answer.
Markdown is sanitized, but an image is allowed markdown, and `![x](https://tracker/p.png)` in a
shared output would make every reader's browser call that host (telling it who read what, and
when). So these pages load images, scripts and styles from this site only (and `data:` images),
may not be framed, and post forms only here. `style-src-attr` allows the inline colour of an
orchestration's icon (a colour checked by gallery.pages.safe_color), not style elements.
"""

from __future__ import annotations

from csp.constants import NONE, SELF
from csp.decorators import csp

PUBLIC_PAGES = {
    "default-src": [NONE],
    "script-src": [SELF],
    "style-src": [SELF],
    "style-src-attr": ["'unsafe-inline'"],
    "img-src": [SELF, "data:"],
    "font-src": [SELF],
    "connect-src": [SELF],
    "form-action": [SELF],
    "frame-ancestors": [NONE],
    "base-uri": [NONE],
}

public_page = csp(PUBLIC_PAGES)
