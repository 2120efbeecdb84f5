"""A model's answer as it streams in, for live viewers: `agent_delta` frames, never stored.

The agent executor calls `StepContext.delta(turn, chunk)` for every piece of text a provider
streams (often a few characters, dozens a second). A `DeltaSink` per step coalesces them: the
first piece goes out at once, then at most one frame every INTERVAL_S, and whatever is left when
the model call ends (the step emits its `agent_turn`), the turn changes or the step ends is sent
before that, so a viewer never gets the stored turn ahead of the text it replaces.

Secrets: a frame's text is masked with the step's Redactor, like everything the step emits. A
chunk boundary may fall inside a secret (`sk-12` then `34...`), and masking each frame alone would
then show it in two halves; so the sink only cuts the text where no secret can span the cut: a
tail that is, or may still become, a secret stays back until the text shows it is not one, or
until the model call ends (then it was not a secret, and the stored turn shows the same text).
What viewers see of a turn is therefore the masked answer, and no piece of a secret is ever sent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from runs.engine.redaction import Redactor

INTERVAL_S = 0.1

Publish = Callable[[dict[str, Any]], None]
Later = Callable[[float, Callable[[], None]], None]


class DeltaSink:
    """`ctx.delta` of one step. `publish` gets each frame `{"step_id", "turn", "text"}` and must
    not block (events.publish_delta only queues it for the notifier's loop); `later(delay, fn)`
    calls `fn` after `delay` seconds on another thread, so text that arrived just after a frame
    is not held until the next chunk when the model pauses. Thread-safe: the timer and the
    executor may call in at the same moment, and frames are published under the lock, in order."""

    def __init__(
        self,
        step_id: str,
        publish: Publish,
        hide: Redactor,
        *,
        later: Later | None = None,
        clock: Callable[[], float] = time.monotonic,
        interval: float = INTERVAL_S,
    ) -> None:
        self.step_id, self.publish, self.hide = step_id, publish, hide
        self.later, self.clock, self.interval = later, clock, interval
        self.lock = threading.Lock()
        self.turn: int | None = None
        self.pending = ""  # text of `turn` not sent yet
        self.sent_at = float("-inf")
        self.timer_set = False
        self.closed = False

    def __call__(self, turn: int, text: str) -> None:
        if not text:
            return
        with self.lock:
            if self.closed:
                return
            if turn != self.turn:
                self._send(final=True)
                self.turn = turn
            self.pending += text
            wait = self.sent_at + self.interval - self.clock()
            if wait <= 0:
                self._send(final=False)
            elif not self.timer_set and self.later is not None:
                self.timer_set = True
                self.later(wait, self._on_timer)

    def flush(self) -> None:
        """Send everything held, secret-looking tail included: the model call is over."""
        with self.lock:
            self._send(final=True)

    def close(self) -> None:
        """The step is over: send what is left; later calls (a late timer) do nothing."""
        with self.lock:
            self._send(final=True)
            self.closed = True

    def _on_timer(self) -> None:
        with self.lock:
            self.timer_set = False
            if self.closed or not self.pending:
                return
            wait = self.sent_at + self.interval - self.clock()
            if wait <= 0:
                self._send(final=False)
            elif self.later is not None:  # a frame went out since: wait for its interval
                self.timer_set = True
                self.later(wait, self._on_timer)

    def _send(self, *, final: bool) -> None:
        """Publish the pending text up to a safe cut (all of it when `final`). Holds the lock."""
        raw = self.pending
        cut = len(raw) if final else safe_cut(raw, self.hide.secrets)
        if not cut:
            return
        self.pending = raw[cut:]
        self.sent_at = self.clock()
        self.publish({"step_id": self.step_id, "turn": self.turn, "text": self.hide(raw[:cut])})


def safe_cut(text: str, secrets: Iterable[str]) -> int:
    """The longest prefix of `text` that can be masked and sent on its own: no secret, whole or
    still arriving, begins before the cut and ends after it.

    Text before `text` (sent earlier) ends at such a cut, so no secret spans into it; only
    starts within the last len(longest secret) characters can reach past a cut."""
    secrets = tuple(secrets)
    if not secrets:
        return len(text)
    longest = max(len(secret) for secret in secrets)
    cut = len(text)
    moved = True
    while moved:
        moved = False
        for start in range(max(0, cut - longest + 1), cut):
            if any(
                start + len(secret) > cut and secret.startswith(text[start : start + len(secret)])
                for secret in secrets
            ):
                cut, moved = start, True
                break
    return cut


class FinishedTurns:
    """The model calls a connection has seen stored (`agent_turn`), so that a delta of one of
    them arriving late (the stream read the table before the delta came through the channel
    layer) is dropped: a viewer never sees text grow again after the whole answer. A step that
    starts again (a new attempt counts its turns from 1) forgets its turns."""

    def __init__(self) -> None:
        self.done: set[tuple[str, int]] = set()

    def note(self, kind: str, step_id: str, data: Any) -> None:
        if kind == "agent_turn" and isinstance(data, dict):
            self.done.add((step_id, int(data.get("turn") or 0)))
        elif kind == "step_start":
            self.done = {key for key in self.done if key[0] != step_id}

    def note_all(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            self.note(event["type"], event["step_id"], event["data"])

    def fresh(self, delta: dict[str, Any]) -> bool:
        return (delta.get("step_id"), delta.get("turn")) not in self.done
