"""`--teacher openai:MODEL`: any OpenAI-compatible chat completions endpoint.

Requests go out concurrently (at most `concurrency` in flight) through the official `openai`
async client, paced by a `RateLimiter` (requests and tokens per minute, `x-ratelimit-*` headers,
a client-wide pause on 429). Failures are retried with tenacity: exponential backoff with jitter
for 429, 5xx, timeouts, dropped connections and unreadable bodies; other 4xx fail their row with
the reason. The key is read from the environment and kept inside the client: it is never part of
the teacher's identity, a log line, an error or a cache entry.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import Counter
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field
from tenacity import (AsyncRetrying, RetryError, retry_if_exception, stop_after_attempt,
                      wait_exponential_jitter)

from factory.errors import FactoryError
from factory.teachers.base import TeachRequest, TeachResult, estimate_tokens
from factory.teachers.limits import RateLimiter, retry_after

log = logging.getLogger(__name__)

KEY_VARIABLES = ("FACTORY_API_KEY", "OPENAI_API_KEY")


class APIOptions(BaseModel):
    """Options of an API teacher (a teacher config's `api:` block)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    concurrency: int = Field(default=16, ge=1, le=4096)
    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)
    timeout: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=6, ge=0, le=100)
    # json_schema: send the task's schema as response_format; prompt: describe it in the prompt;
    # auto: try json_schema and fall back to prompt if the server refuses it.
    structured_output: str = Field(default="auto", pattern="^(auto|json_schema|prompt)$")


class Retryable(Exception):
    """A failure worth another try; `reason` counts it."""

    def __init__(self, reason: str, detail: str, wait: float | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.wait = wait


def api_key() -> str:
    for name in KEY_VARIABLES:
        value = os.environ.get(name)
        if value:
            return value
    raise FactoryError("no API key: set FACTORY_API_KEY or OPENAI_API_KEY", field="--teacher",
                       hint="any value works for a server that checks none")


def redact_url(url: str) -> str:
    """The URL without user:password or a query (where keys sometimes hide)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


class APITeacher:
    """An OpenAI-compatible endpoint as a teacher.

    >>> teacher = APITeacher("gpt-4o-mini", APIOptions(requests_per_minute=500))
    >>> for result in teacher.generate(requests): ...
    """

    kind = "openai"

    def __init__(self, model: str, options: APIOptions, base_url: str | None = None) -> None:
        self.model = model
        self.options = options
        url = base_url or options.base_url or os.environ.get("OPENAI_BASE_URL")
        self.base_url = url or "https://api.openai.com/v1"
        self.structured = options.structured_output != "prompt"
        self.counts: Counter[str] = Counter()
        self.limiter = RateLimiter(options.requests_per_minute, options.tokens_per_minute)
        self._key = api_key()
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def identity(self) -> dict[str, str]:
        return {"kind": self.kind, "model": self.model, "revision": redact_url(self.base_url)}

    def describe(self) -> str:
        return f"openai:{self.model} at {redact_url(self.base_url)}"

    def start(self) -> None:
        if self._client is not None:
            return
        from openai import AsyncOpenAI

        self._loop = asyncio.new_event_loop()
        self._client = AsyncOpenAI(api_key=self._key, base_url=self.base_url, max_retries=0,
                                   timeout=self.options.timeout)

    def close(self) -> None:
        if self._client is not None and self._loop is not None:
            self._loop.run_until_complete(self._client.close())
            self._loop.close()
        self._client, self._loop = None, None

    def stats(self) -> dict[str, Any]:
        """Retries by reason, failures, and the rate limiter's state (for the manifest)."""
        limits = self.limiter.status()
        return {"retries": {k[len("retry:"):]: v for k, v in sorted(self.counts.items())
                            if k.startswith("retry:")},
                "failed": {k[len("failed:"):]: v for k, v in sorted(self.counts.items())
                           if k.startswith("failed:")},
                "structured_output": "json_schema" if self.structured else "prompt",
                "requests_per_minute": limits.rpm, "tokens_per_minute": limits.tpm,
                "cooldowns": limits.cooldowns, "cooldown_seconds": limits.cooldown_seconds}

    # -- generation ---------------------------------------------------------------------------

    def generate(self, requests: list[TeachRequest],
                 on_answer: Callable[[int, int], None] | None = None) -> Iterator[TeachResult]:
        """Results as they complete; at most `concurrency` requests in flight."""
        self.start()
        assert self._loop is not None
        gate = asyncio.Semaphore(self.options.concurrency)
        tasks = [self._loop.create_task(self._one(r, gate)) for r in requests]
        # One callback per task feeds a queue (asyncio.wait in a loop would register a callback
        # on every pending task each time one finishes: quadratic in the batch).
        finished: asyncio.Queue[asyncio.Task[TeachResult]] = asyncio.Queue()
        for task in tasks:
            task.add_done_callback(finished.put_nowait)
        done_count = 0
        try:
            while done_count < len(tasks):
                ready = [self._loop.run_until_complete(finished.get())]
                while not finished.empty():  # everything that finished meanwhile, at once
                    ready.append(finished.get_nowait())
                for task in ready:
                    done_count += 1
                    if on_answer:
                        on_answer(done_count, len(requests))
                    yield task.result()
        finally:
            pending = [t for t in tasks if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))

    async def _one(self, request: TeachRequest, gate: asyncio.Semaphore) -> TeachResult:
        reserve = estimate_tokens(request.messages) + request.sampling.max_tokens
        try:  # the first attempt outside tenacity: most requests need no other
            async with gate:
                await self.limiter.acquire(reserve)
                return await self._call(request, reserve)
        except Retryable as exc:
            self.counts[f"retry:{exc.reason}"] += 1
            if self.options.max_retries == 0:
                self.counts[f"failed:{exc.reason}"] += 1
                return TeachResult(request.key, "", error=f"{exc.reason} after 1 attempt: {exc}")
            first_wait = 0.0 if exc.wait is not None else 0.5
        except FailedRequest as exc:
            self.counts[f"failed:{exc.reason}"] += 1
            return TeachResult(request.key, "", error=f"{exc.reason}: {exc}")
        await asyncio.sleep(first_wait)
        try:
            async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(self.options.max_retries),
                    wait=self._wait, retry=retry_if_exception(lambda e: isinstance(e, Retryable)),
                    before_sleep=self._count_retry, reraise=False):
                with attempt:
                    async with gate:
                        await self.limiter.acquire(reserve)
                        return await self._call(request, reserve)
        except RetryError as exc:
            failure = exc.last_attempt.exception()
            self.counts[f"failed:{failure.reason}"] += 1
            return TeachResult(request.key, "", error=f"{failure.reason} after "
                               f"{self.options.max_retries + 1} attempts: {failure}")
        except FailedRequest as exc:
            self.counts[f"failed:{exc.reason}"] += 1
            return TeachResult(request.key, "", error=f"{exc.reason}: {exc}")
        raise AssertionError("unreachable")

    def _count_retry(self, state: Any) -> None:
        failure = state.outcome.exception() if state.outcome else None
        self.counts[f"retry:{getattr(failure, 'reason', 'unknown')}"] += 1

    def _wait(self, state: Any) -> float:
        backoff = wait_exponential_jitter(initial=0.5, max=30.0, jitter=0.5)(state)
        failure = state.outcome.exception() if state.outcome else None
        if isinstance(failure, Retryable) and failure.wait is not None:
            return 0.0  # the limiter already pauses the whole client for Retry-After
        return backoff

    async def _call(self, request: TeachRequest, reserved: int) -> TeachResult:
        import openai

        kwargs = self._request_kwargs(request)
        try:
            raw = await self._client.chat.completions.with_raw_response.create(**kwargs)
        except openai.APIStatusError as exc:
            self.limiter.settle(reserved, 0)
            headers = dict(exc.response.headers) if exc.response is not None else {}
            status = exc.status_code
            if status == 429:
                wait = retry_after(headers)
                self.limiter.pause(wait if wait is not None else 1.0)
                raise Retryable("rate_limited", f"HTTP 429", wait) from None
            if status >= 500 or status in (408, 409):
                raise Retryable(f"http_{status}", f"HTTP {status}") from None
            if status == 400 and self.structured and "response_format" in kwargs and \
                    self.options.structured_output == "auto":
                log.warning("the server refused response_format (HTTP 400): describing the "
                            "schema in the prompt instead")
                self.structured = False
                raise Retryable("no_structured_output", "HTTP 400 on response_format",
                                wait=0.0) from None
            raise FailedRequest(f"http_{status}", _short(exc.message)) from None
        except openai.APITimeoutError:
            self.limiter.settle(reserved, 0)
            raise Retryable("timeout", f"no answer within {self.options.timeout:g}s") from None
        except openai.APIConnectionError as exc:
            self.limiter.settle(reserved, 0)
            raise Retryable("connection", _short(str(exc.__cause__ or exc))) from None
        self.limiter.observe(dict(raw.headers))
        try:
            completion = raw.parse()
            choice = completion.choices[0]
            text = choice.message.content or ""
            usage = completion.usage
        except Exception as exc:  # noqa: BLE001 - any unreadable body is the server's fault
            self.limiter.settle(reserved, reserved)
            raise Retryable("malformed", f"unreadable response body ({type(exc).__name__})") \
                from None
        prompt_tokens = usage.prompt_tokens if usage else 0
        completion_tokens = usage.completion_tokens if usage else 0
        self.limiter.settle(reserved, prompt_tokens + completion_tokens)
        return TeachResult(request.key, text, prompt_tokens, completion_tokens,
                           choice.finish_reason or "stop")

    def _request_kwargs(self, request: TeachRequest) -> dict[str, Any]:
        s = request.sampling
        messages = request.messages
        kwargs: dict[str, Any] = {"model": self.model, "temperature": s.temperature,
                                  "top_p": s.top_p, "max_tokens": s.max_tokens, "seed": s.seed}
        if request.json_schema is not None:
            if self.structured:
                kwargs["response_format"] = {"type": "json_schema", "json_schema": {
                    "name": "record", "schema": request.json_schema}}
            else:
                messages = with_schema_instruction(messages, request.json_schema)
        kwargs["messages"] = messages
        return kwargs


class FailedRequest(Exception):
    """A failure another try will not fix (a 4xx other than 408/409/429)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def with_schema_instruction(messages: list[dict[str, str]],
                            schema: dict[str, Any]) -> list[dict[str, str]]:
    """The prompt-only fallback: ask for one JSON object of the schema in the last message."""
    note = ("\n\nAnswer with one JSON object only, no other text, matching this JSON schema:\n"
            + json.dumps(schema, sort_keys=True))
    out = [dict(m) for m in messages]
    out[-1]["content"] = out[-1]["content"] + note
    return out


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "…"
