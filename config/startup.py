"""What a long-running process does once it has loaded the app (web and websocket servers, each
worker process): it freezes what it loaded, out of the garbage collector's reach.

Everything loaded at start-up (modules, settings, URL patterns, the agent step's libraries) lives
as long as the process. Python's full collection scanned all of it every time: about 310,000
objects and a 160 ms pause here, every few thousand requests or steps, which came out as a
request's or a step's latency (a list page's p99 under load was that pause). Frozen, a full
collection scans only what requests and tasks made since.
"""

from __future__ import annotations

import gc


def freeze_loaded_objects() -> None:
    gc.collect()  # what loading left as garbage goes first, rather than staying for good
    gc.freeze()
