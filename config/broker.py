"""The embedded profile's broker: kombu's filesystem transport, with each message written
atomically.

kombu creates a message's file, then writes into it. A worker polling the folder in between
took the empty file, failed to decode it and stopped for good ("Unrecoverable error:
JSONDecodeError"), and the message was lost with it. Here the message is written under a name
no consumer picks up, then renamed into place: a rename within a folder is atomic.
"""

from __future__ import annotations

import os
import time
import uuid

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        # kombu's naming: consumers take files in name order, so the clock comes first.
        name = f"{round(time.monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = f"{final}.partial"  # `_get` takes only names ending in .<queue>.msg
        try:
            with open(partial, "wb") as out:
                out.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
