"""How fast an API teacher may send: request and token rates, and a client-wide cool-down.

Hand-written rather than a library limiter (aiolimiter and the like) for three reasons the
endpoint imposes: a token request is only known in full after the answer (its estimate is
reserved up front and the difference settled afterwards); a 429's `Retry-After` must pause every
request of the client, not only the one that got it; and the `x-ratelimit-*` headers a server
sends can lower the configured rates while the run goes on.

Both buckets pace rather than burst: the request bucket holds a single request and the token
bucket one second of tokens, and both run a little under the limit (2%, at least one request a
minute). A server counting over any 60-second window then never sees more than its limit, and
the client still reaches 98% of it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)


class Bucket:
    """A token bucket refilled at `rate` per second, holding at most `capacity`.

    `take(n)` waits until `n` are available and removes them; the level may go negative when a
    request turns out to cost more than it reserved (`settle`), and refills from there.
    """

    def __init__(self, per_minute: float, capacity: float | None = None) -> None:
        self.rate = per_minute / 60.0
        self.capacity = capacity if capacity is not None else max(1.0, self.rate)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def delay(self, n: float) -> float:
        """Seconds until `n` can be taken (0 if now)."""
        self._refill()
        need = min(n, self.capacity) - self.level
        return max(0.0, need / self.rate)

    def take(self, n: float) -> None:
        self._refill()
        self.level -= n

    def settle(self, n: float) -> None:
        """Give back (n > 0) or charge (n < 0) the difference between reserved and used."""
        self._refill()
        self.level = min(self.capacity, self.level + n)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_reset(value: str | None) -> float | None:
    """Seconds in a reset header: '1s', '6m0s', '250ms', '0.5' (OpenAI's and others' forms)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if not parts:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[unit] for n, unit in parts)


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds a `Retry-After` (or `retry-after-ms`) header asks to wait."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


@dataclass
class LimitStatus:
    rpm: float | None
    tpm: float | None
    cooldowns: int
    cooldown_seconds: float


class RateLimiter:
    """Gatekeeper of one API client: every request `acquire`s before it is sent.

    >>> limiter = RateLimiter(rpm=500, tpm=200_000)
    >>> await limiter.acquire(tokens=1200)   # waits for a request slot, 1200 tokens, cool-down
    >>> limiter.settle(reserved=1200, used=950)
    """

    def __init__(self, rpm: float | None = None, tpm: float | None = None) -> None:
        self.rpm, self.tpm = rpm, tpm
        self.requests = Bucket(_under(rpm), capacity=1.0) if rpm else None
        self.tokens = Bucket(_under(tpm), capacity=max(1.0, tpm / 60.0)) if tpm else None
        self.paused_until = 0.0
        self.cooldowns = 0
        self.cooldown_seconds = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self, tokens: int = 0) -> None:
        if self.requests is None and self.tokens is None and self.paused_until <= 0:
            return  # no limit known and never paused: nothing to wait for
        async with self._lock:  # first come, first served
            while True:
                wait = self.paused_until - time.monotonic()
                if self.requests is not None:
                    wait = max(wait, self.requests.delay(1))
                if self.tokens is not None and tokens:
                    wait = max(wait, self.tokens.delay(tokens))
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            if self.requests is not None:
                self.requests.take(1)
            if self.tokens is not None and tokens:
                self.tokens.take(tokens)

    def reserve(self, tokens: int = 0) -> float:
        """Book the next send slot now and give the seconds to wait for it: `acquire` for
        clients in other processes (Ray actors) that share this limiter. Each reservation
        queues behind the earlier ones, so the clients together keep to the limits."""
        wait = max(0.0, self.paused_until - time.monotonic())
        if self.requests is not None:
            wait = max(wait, self.requests.delay(1))
            self.requests.take(1)
        if self.tokens is not None and tokens:
            wait = max(wait, self.tokens.delay(tokens))
            self.tokens.take(tokens)
        return wait

    def settle(self, reserved: int, used: int) -> None:
        if self.tokens is not None:
            self.tokens.settle(reserved - used)

    def pause(self, seconds: float) -> None:
        """Hold every request of the client for `seconds` (a 429's Retry-After)."""
        until = time.monotonic() + seconds
        if until > self.paused_until:
            self.cooldowns += 1
            self.cooldown_seconds += until - max(self.paused_until, time.monotonic())
            self.paused_until = until
            log.info("rate limited: pausing all requests for %.1fs", seconds)

    def observe(self, headers: Mapping[str, str] | None) -> None:
        """Adapt to the server's `x-ratelimit-*` headers: adopt a lower limit than configured,
        and pause until the reset when a budget is used up."""
        if not headers:
            return
        for kind in ("requests", "tokens"):
            limit = _number(headers.get(f"x-ratelimit-limit-{kind}"))
            configured = self.rpm if kind == "requests" else self.tpm
            if limit and limit > 0 and (configured is None or limit < configured):
                log.info("server limit: %d %s per minute", limit, kind)
                capacity = 1.0 if kind == "requests" else max(1.0, limit / 60.0)
                setattr(self, kind, Bucket(_under(limit), capacity))
                if kind == "requests":
                    self.rpm = limit
                else:
                    self.tpm = limit
            remaining = _number(headers.get(f"x-ratelimit-remaining-{kind}"))
            if remaining is not None and remaining <= 0:
                reset = parse_reset(headers.get(f"x-ratelimit-reset-{kind}"))
                if reset:
                    self.pause(reset)

    def status(self) -> LimitStatus:
        return LimitStatus(self.rpm, self.tpm, self.cooldowns, round(self.cooldown_seconds, 2))


def _under(limit: float) -> float:
    """The pace kept under a per-minute limit."""
    return limit - max(1.0, 0.02 * limit)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
