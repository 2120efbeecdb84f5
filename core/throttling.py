"""Rate limits: per token (service accounts have no user id, so they must not share a bucket),
per user, per client address.

DRF's own throttles keep every request's timestamp in one cache entry, read and written whole
on each request: at 6,000 requests a minute that is a 50 KB value sent to Redis and back every
time. Here each key holds a counter per fixed window, and the limit applies to a sliding
window estimated from the current and the previous counts (the previous one weighted by how
much of it the sliding window still covers): one read of two small numbers and one increment.
On Redis the read, the check and the increment are one script: one round trip per request
rather than four (Django's cache client opens a client object and asks whether the key exists
before each increment).
"""

from __future__ import annotations

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.redis import RedisCache
from redis.commands.core import Script
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from core.logins import client_address
from core.tenancy import Tenant

# KEYS: the current and the previous window's counters. ARGV: the previous window's weight, the
# limit, the counters' lifetime. Answers whether the request is allowed, and the two counts.
SLIDING_WINDOW_LUA = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
if previous * tonumber(ARGV[1]) + current >= tonumber(ARGV[2]) then
  return {0, current, previous}
end
if redis.call('INCR', KEYS[1]) == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return {1, current, previous}
"""
_sliding_window = Script(None, SLIDING_WINDOW_LUA.encode())  # run on the cache's own client


class SlidingWindowMixin:
    """For DRF's SimpleRateThrottle subclasses: the same rates, keys and `wait`, counted in
    windows."""

    @property
    def cache(self):
        # The backend itself: DRF's `default_cache` is a proxy, which no isinstance() sees through.
        return caches[DEFAULT_CACHE_ALIAS]

    def get_ident(self, request) -> str:
        # The client's address as sign-in limits read it. DRF's own reading takes
        # X-Forwarded-For as the client wrote it, so a client that changed that header on every
        # request was never limited.
        return client_address(request)

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        current, previous = f"{self.key}:{window}", f"{self.key}:{window - 1}"
        self.elapsed = now - window * self.duration
        if isinstance(self.cache, RedisCache):
            return self._count_on_redis(current, previous)
        counts = self.cache.get_many([current, previous])
        self.previous, self.count = counts.get(previous, 0), counts.get(current, 0)
        if self.previous * (1 - self.elapsed / self.duration) + self.count >= self.num_requests:
            return False
        # Kept for two windows: the next one weighs this one.
        if not self.cache.add(current, 1, timeout=2 * self.duration):
            self.cache.incr(current)
        return True

    def _count_on_redis(self, current: str, previous: str) -> bool:
        keys = [self.cache.make_and_validate_key(key) for key in (current, previous)]
        client = self.cache._cache.get_client(keys[0], write=True)
        weight = repr(1 - self.elapsed / self.duration)
        allowed, self.count, self.previous = _sliding_window(
            keys, [weight, self.num_requests, 2 * self.duration], client=client
        )
        return bool(allowed)

    def wait(self) -> float:
        """Seconds until the estimate drops below the limit, if nothing else arrives: the
        previous window's weight falls linearly to zero over the current one."""
        limit, span = self.num_requests, self.duration
        if self.count < limit:
            # previous * (1 - t / span) + count < limit, for t past now
            return max(1.0, span * (1 - (limit - self.count) / self.previous) - self.elapsed)
        # Not within this window: in the next one, this window's count is the one that fades.
        return max(1.0, span - self.elapsed + span * (1 - limit / self.count))


class TokenRateThrottle(SlidingWindowMixin, UserRateThrottle):
    def get_cache_key(self, request, view):
        tenant = request.auth
        if isinstance(tenant, Tenant) and tenant.token is not None:
            ident = f"token-{tenant.token.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"ip-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class AnonymousRateThrottle(SlidingWindowMixin, AnonRateThrottle):
    """Requests without credentials, per client address."""
