"""The sliding-window rate limit: counts per window, the previous one fading over the current."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.redis import RedisCache
from redis import Redis

from core.throttling import AnonymousRateThrottle, TokenRateThrottle


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def limit(monkeypatch):
    """`limit(rate)`: `allow()` makes one request of one token at the clock's time (a new
    throttle each time, as DRF makes one per request) and returns the throttle."""
    clock = Clock(6_000_000.0)  # the start of a minute
    monkeypatch.setattr(TokenRateThrottle, "timer", clock)

    def make(rate: str):
        monkeypatch.setattr(TokenRateThrottle, "THROTTLE_RATES", {"user": rate})
        request = SimpleNamespace(auth=None, user=SimpleNamespace(is_authenticated=True, pk=7))

        def allow():
            throttle = TokenRateThrottle()
            throttle.allowed = throttle.allow_request(request, None)
            return throttle

        return clock, allow

    return make


def test_a_window_takes_its_limit_then_refuses_until_the_next(limit):
    clock, allow = limit("10/min")
    assert all(allow().allowed for _ in range(10))
    clock.now += 20
    refused = allow()
    assert not refused.allowed
    # This window's 10 fade over the next one: only past its start can one more go through.
    assert 40 <= refused.wait() <= 41


def test_the_previous_window_counts_as_much_as_the_sliding_window_still_covers_it(limit):
    clock, allow = limit("10/min")
    assert all(allow().allowed for _ in range(10))
    clock.now += 90  # half-way through the next minute: the 10 count as 5
    assert [allow().allowed for _ in range(6)] == [True] * 5 + [False]
    clock.now += 15  # three quarters through: they count as 2.5, with 5 of this minute
    assert [allow().allowed for _ in range(4)] == [True] * 3 + [False]
    clock.now += 60  # a minute later, the 8 of that minute count as 2
    assert [allow().allowed for _ in range(9)] == [True] * 8 + [False]


def test_a_refusal_at_the_edge_of_the_sliding_window_waits_a_second(limit):
    clock, allow = limit("10/min")
    assert all(allow().allowed for _ in range(10))
    clock.now += 60  # the next minute begins: the 10 still count whole, for an instant
    refused = allow()
    assert not refused.allowed and refused.wait() == 1.0
    clock.now += 1
    assert allow().allowed


@pytest.mark.skipif(
    not isinstance(caches[DEFAULT_CACHE_ALIAS], RedisCache), reason="counts Redis commands"
)
def test_on_redis_a_request_is_counted_in_one_round_trip(limit, monkeypatch):
    """One script (read both windows, check, increment) per request, not Django's cache calls
    (get_many, add, exists, incr) one after the other."""
    sent = []
    execute = Redis.execute_command

    def counting(self, *args, **options):
        sent.append(args[0])
        return execute(self, *args, **options)

    monkeypatch.setattr(Redis, "execute_command", counting)
    _, allow = limit("5/min")
    assert [allow().allowed for _ in range(6)] == [True] * 5 + [False]
    assert [command for command in sent if command != "SCRIPT LOAD"] == ["EVALSHA"] * 6


@pytest.fixture
def anonymous_limit(monkeypatch, settings):
    """Requests without credentials are limited to 3 a day."""
    monkeypatch.setattr(AnonymousRateThrottle, "THROTTLE_RATES", {"anon": "3/day"})
    return settings


def gallery(client, forwarded: str | None = None) -> int:
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return client.get("/api/v1/gallery", **headers).status_code


@pytest.mark.django_db
def test_a_forged_forwarded_for_header_does_not_escape_the_anonymous_limit(client, anonymous_limit):
    anonymous_limit.BEHIND_PROXY = False
    answers = [gallery(client, f"203.0.113.{n}") for n in range(4)]
    answers += [gallery(client, f"198.51.100.7, 203.0.113.{n}") for n in range(2)]
    assert answers == [200, 200, 200, 429, 429, 429]


@pytest.mark.django_db
def test_behind_a_proxy_the_anonymous_limit_counts_the_address_the_proxy_added(
    client, anonymous_limit
):
    anonymous_limit.BEHIND_PROXY = True
    # What the client forged sits left of the proxy's own entry, which is the same each time.
    answers = [gallery(client, f"203.0.113.{n}, 192.0.2.10") for n in range(4)]
    # Another client behind the same proxy has its own count.
    answers.append(gallery(client, "203.0.113.1, 192.0.2.11"))
    assert answers == [200, 200, 200, 429, 200]
