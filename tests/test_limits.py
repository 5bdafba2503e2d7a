"""The API teacher's pacing: buckets, header parsing, adaptation and the client-wide pause."""

from __future__ import annotations

import asyncio
import time

import pytest

from factory.teachers.limits import RateLimiter, parse_reset, retry_after


@pytest.mark.parametrize("text,seconds", [("1s", 1.0), ("6m0s", 360.0), ("250ms", 0.25),
                                          ("0.5", 0.5), ("1h2m", 3720.0), ("", None),
                                          ("soon", None)])
def test_reset_durations(text, seconds):
    assert parse_reset(text) == seconds


def test_retry_after_forms():
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after-ms": "1500"}) == 1.5
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
    assert retry_after({}) is None and retry_after(None) is None


def test_requests_are_paced_under_the_limit_without_a_burst():
    async def run() -> list[float]:
        limiter = RateLimiter(rpm=1200)  # 20/s, paced at 19.6/s
        stamps = []
        for _ in range(21):
            await limiter.acquire()
            stamps.append(time.monotonic())
        return stamps

    stamps = asyncio.run(run())
    elapsed = stamps[-1] - stamps[0]
    assert 20 / 19.6 * 0.95 <= elapsed <= 20 / 19.6 * 1.3  # no initial burst, close to the pace


def test_tokens_are_reserved_and_settled():
    async def run() -> float:
        limiter = RateLimiter(tpm=60_000)  # 1,000 tokens/s, bucket of one second
        await limiter.acquire(tokens=980)
        limiter.settle(reserved=980, used=100)  # most of it given back
        start = time.monotonic()
        await limiter.acquire(tokens=800)
        return time.monotonic() - start

    assert asyncio.run(run()) < 0.2


def test_pause_holds_every_request_and_headers_lower_the_limit():
    async def run() -> tuple[float, RateLimiter]:
        limiter = RateLimiter(rpm=6000)
        limiter.pause(0.5)
        start = time.monotonic()
        await asyncio.gather(*(limiter.acquire() for _ in range(3)))
        waited = time.monotonic() - start
        limiter.observe({"x-ratelimit-limit-requests": "300",
                         "x-ratelimit-remaining-requests": "0",
                         "x-ratelimit-reset-requests": "0.3s"})
        return waited, limiter

    waited, limiter = asyncio.run(run())
    assert waited >= 0.5
    status = limiter.status()
    assert status.rpm == 300 and status.cooldowns == 2  # the 429's pause and the reset's
    limiter.observe({"x-ratelimit-limit-requests": "100000"})  # higher than in force: ignored
    assert limiter.status().rpm == 300
