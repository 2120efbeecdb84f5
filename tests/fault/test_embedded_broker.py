"""The embedded broker never shows a consumer a message that is still being written (kombu's
own filesystem transport does: a worker that picked up the empty file died on it)."""

from __future__ import annotations

import json
import threading

from kombu import Connection

from config import broker

MESSAGES = 60
BODY = "x" * 1024 * 1024  # large enough that writing one takes several polls of the reader


def test_a_consumer_polling_the_folder_only_ever_sees_whole_messages(tmp_path):
    folder = tmp_path / "queue"
    folder.mkdir()
    done = threading.Event()
    looked_at, torn = [], []

    def poll() -> None:
        # What a worker does: list the folder, take the names ending in .<queue>.msg, read them.
        while not done.is_set():
            for path in folder.iterdir():
                if not path.name.endswith(".celery.msg"):
                    continue
                try:
                    data = path.read_bytes()
                except FileNotFoundError:
                    continue  # taken meanwhile
                looked_at.append(path.name)
                try:
                    json.loads(data)
                except ValueError:
                    torn.append((path.name, len(data)))

    reader = threading.Thread(target=poll)
    reader.start()
    options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(tmp_path / "control"),
    }
    try:
        with Connection(transport=broker.Transport, transport_options=options) as connection:
            channel = connection.default_channel
            for n in range(MESSAGES):
                channel._put("celery", {"n": n, "body": BODY})
            received = [channel._get("celery") for _ in range(MESSAGES)]
    finally:
        done.set()
        reader.join()
    assert torn == []
    assert looked_at, "the reader never saw a message: the test proved nothing"
    assert sorted(payload["n"] for payload in received) == list(range(MESSAGES))
    assert all(payload["body"] == BODY for payload in received)
    assert not list(folder.iterdir())
