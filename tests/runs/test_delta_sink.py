"""The sink behind `StepContext.delta`: a model's streamed text coalesced into agent_delta frames,
at most one per 100 ms, nothing lost or reordered, secrets masked even when a chunk boundary
falls inside one. Time comes from a fake clock and timers are fired by hand: no sleeps. The fake
clock counts whole milliseconds (the sink takes any unit), so that sums of times are exact."""

from __future__ import annotations

import itertools
import threading

import pytest

from runs.engine.redaction import MASK, Redactor
from runs.services.deltas import INTERVAL_S, DeltaSink, FinishedTurns, safe_cut

SECRET = "sk-live-Zq9xW4"


INTERVAL_MS = round(INTERVAL_S * 1000)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> float:
        return self.now


class Timers:
    """`later` for the sink: records what it asked for; `fire_due` runs the ones due by now."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.pending: list[tuple[float, object]] = []

    def __call__(self, delay: float, callback) -> None:
        self.pending.append((self.clock.now + delay, callback))

    def fire_due(self) -> None:
        due = [item for item in self.pending if item[0] <= self.clock.now]
        self.pending = [item for item in self.pending if item[0] > self.clock.now]
        for _, callback in due:
            callback()


def make_sink(secrets=()):
    clock = Clock()
    timers = Timers(clock)
    published: list[tuple[float, dict]] = []
    sink = DeltaSink(
        "writer",
        lambda frame: published.append((clock.now, frame)),
        Redactor(secrets),
        later=timers,
        clock=clock,
        interval=INTERVAL_MS,
    )
    return sink, clock, timers, published


def texts(published, turn=None) -> str:
    return "".join(f["text"] for _, f in published if turn is None or f["turn"] == turn)


def test_the_first_piece_goes_out_at_once_then_at_most_one_frame_per_interval():
    assert INTERVAL_MS == 100
    sink, clock, timers, published = make_sink()
    pieces = [f"w{n} " for n in range(200)]
    for piece in pieces:  # a provider sending a piece every 7 ms for 1.4 s
        sink(1, piece)
        clock.now += 7
        timers.fire_due()
    sink.flush()
    assert published[0] == (1_000_000, {"step_id": "writer", "turn": 1, "text": "w0 "})
    times = [at for at, _ in published]
    assert all(b - a >= INTERVAL_MS for a, b in itertools.pairwise(times[:-1]))
    assert len(published) <= 1400 / INTERVAL_MS + 2
    assert texts(published) == "".join(pieces)  # nothing lost, nothing reordered


def test_text_left_after_a_frame_goes_out_when_its_interval_is_over_without_more_chunks():
    sink, clock, timers, published = make_sink()
    sink(1, "Hello")
    clock.now += 30
    sink(1, ", wor")
    sink(1, "ld")
    assert texts(published) == "Hello"  # held: a frame went out 30 ms ago
    clock.now += 50
    timers.fire_due()
    assert texts(published) == "Hello"
    clock.now += 20
    timers.fire_due()  # the model went quiet, but the held text is not stuck until it speaks
    assert texts(published) == "Hello, world"
    assert published[-1][0] - published[0][0] == INTERVAL_MS


def test_the_end_of_a_model_call_sends_everything_held():
    sink, _clock, _timers, published = make_sink()
    sink(1, "The answer")
    sink(1, " is 42.")
    assert texts(published) == "The answer"
    sink.flush()  # the executor emits agent_turn: the step flushes first
    assert texts(published) == "The answer is 42."
    sink.flush()
    assert len(published) == 2  # nothing to send, nothing sent


def test_a_new_turn_sends_the_rest_of_the_previous_one_first():
    sink, clock, timers, published = make_sink()
    sink(1, "Let me look")
    sink(1, " that up.")
    sink(2, "Found")
    clock.now += INTERVAL_MS
    timers.fire_due()
    assert [(f["turn"], f["text"]) for _, f in published] == [
        (1, "Let me look"),
        (1, " that up."),
        (2, "Found"),
    ]


def test_after_close_nothing_more_is_sent_even_by_a_late_timer():
    sink, clock, timers, published = make_sink()
    sink(1, "a")
    sink(1, "b")
    sink.close()
    assert texts(published) == "ab"
    sink(1, "c")
    clock.now += 1000
    timers.fire_due()
    assert texts(published) == "ab"


@pytest.mark.parametrize("split", range(1, len(SECRET)))
def test_a_secret_split_across_chunks_is_masked_whole(split):
    """Every chunk arrives after the interval, so each would go out alone: the sink must still
    not send the secret's first part before it knows what follows."""
    sink, clock, _timers, published = make_sink([SECRET])
    answer = f"Your key is {SECRET}, keep it safe."
    at = answer.index(SECRET) + split
    for piece in (answer[:at], answer[at:]):
        sink(1, piece)
        clock.now += 1000
    sink.flush()
    assert texts(published) == f"Your key is {MASK}, keep it safe."
    assert all(SECRET[:3] not in f["text"] for _, f in published)


def test_a_secret_split_over_many_small_chunks_and_timers_is_masked_whole():
    sink, clock, timers, published = make_sink([SECRET])
    answer = f"a{SECRET}b{SECRET[:5]}c and {SECRET}"
    for char in answer:
        sink(1, char)
        clock.now += 40
        timers.fire_due()
    sink.flush()
    assert texts(published) == f"a{MASK}b{SECRET[:5]}c and {MASK}"
    # No frame but the last ends with what may be the start of the secret: that waits.
    beginnings = [SECRET[:n] for n in range(1, len(SECRET))]
    assert not any(f["text"].endswith(tuple(beginnings)) for _, f in published[:-1])


def test_a_tail_that_may_be_a_secret_waits_and_goes_out_once_it_is_not():
    sink, clock, _timers, published = make_sink([SECRET])
    sink(1, "prefix sk-li")
    assert texts(published) == "prefix "
    clock.now += 1000
    sink(1, "ke a dog")
    assert texts(published) == "prefix sk-like a dog"


def test_at_the_end_of_a_turn_an_unfinished_secret_prefix_is_sent_as_the_stored_turn_shows_it():
    sink, _clock, _timers, published = make_sink([SECRET])
    sink(1, "cut off at sk-li")
    sink.flush()
    assert texts(published) == "cut off at sk-li"


def test_a_complete_secret_overlapping_a_possible_one_is_not_cut():
    """`abcdefgh` is whole, and `efghXYZW` may still be arriving: a cut before `efgh` would split
    the first."""
    secrets = ["abcdefgh", "efghXYZW"]
    assert safe_cut("xxabcdefgh", secrets) == 2
    assert safe_cut("xxabcdefg", secrets) == 2
    assert safe_cut("plain text", secrets) == len("plain text")
    assert safe_cut("anything", []) == len("anything")
    sink, clock, _timers, published = make_sink(secrets)
    sink(1, "xxabcdefgh")
    clock.now += 1000
    sink(1, "!")
    sink.flush()
    assert texts(published) == f"xx{MASK}!"


def test_chunks_from_two_threads_keep_their_order_per_frame():
    sink, clock, timers, published = make_sink()
    pieces = [f"{n}," for n in range(2000)]
    feeding = threading.Thread(target=lambda: [sink(1, piece) for piece in pieces])
    feeding.start()
    for _ in range(200):
        clock.now += 200
        timers.fire_due()
    feeding.join()
    sink.flush()
    assert texts(published) == "".join(pieces)


def test_a_delta_of_a_turn_already_stored_is_stale_until_its_step_starts_again():
    finished = FinishedTurns()
    delta = {"step_id": "writer", "turn": 1, "text": "x"}
    assert finished.fresh(delta)
    finished.note_all([{"type": "agent_turn", "step_id": "writer", "data": {"turn": 1}}])
    assert not finished.fresh(delta)
    assert finished.fresh({**delta, "turn": 2})
    assert finished.fresh({**delta, "step_id": "other"})
    finished.note("step_start", "writer", {"attempt": 2})
    assert finished.fresh(delta)
