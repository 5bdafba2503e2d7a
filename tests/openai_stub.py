"""A small OpenAI-compatible chat completions server for tests and benchmarks, on 127.0.0.1.

It answers every request with a support ticket (JSON) composed from the request's `seed`, after
a fixed delay, and can enforce a request-per-minute limit the way hosted APIs do (429 with
Retry-After), throttle every Nth request, advertise the limit in `x-ratelimit-*` headers, refuse
`response_format`, and check a key. `GET /stats` gives what it saw (counts, and `sent_ms`: when
each request within the limits arrived, in monotonic milliseconds). It is the stand-in for a
hosted API where the API is not the subject; tests/test_api_vllm.py runs the real vLLM server.

    python tests/openai_stub.py --delay 0.2 --rpm 600   # prints "PORT <n>" when ready
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
import time
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.tickets import ticket  # noqa: E402


class Stub:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.window: collections.deque[float] = collections.deque()
        self.stats = collections.Counter()
        self.in_flight = 0
        self.sent_ms: list[int] = []  # when each request within the limits arrived

    async def completions(self, request: web.Request) -> web.Response:
        self.stats["requests"] += 1
        if self.args.key and request.headers.get("Authorization") != f"Bearer {self.args.key}":
            self.stats["unauthorized"] += 1
            return web.json_response({"error": {"message": "bad key"}}, status=401)
        now = time.monotonic()
        while self.window and now - self.window[0] >= 60.0:
            self.window.popleft()
        if self.args.rpm and len(self.window) >= self.args.rpm:
            self.stats["rate_limited"] += 1
            wait = 60.0 - (now - self.window[0])
            return web.json_response({"error": {"message": "rate limited"}}, status=429,
                                     headers={"retry-after": f"{wait:.3f}"})
        if self.args.throttle_every and self.stats["requests"] % self.args.throttle_every == 0:
            self.stats["rate_limited"] += 1
            return web.json_response({"error": {"message": "slow down"}}, status=429,
                                     headers={"retry-after": "0.5"})
        self.window.append(now)
        self.stats["first_ms"] = self.stats["first_ms"] or int(now * 1000)
        self.stats["last_ms"] = int(now * 1000)
        self.sent_ms.append(int(now * 1000))
        body = await request.json()
        if self.args.no_response_format and "response_format" in body:
            self.stats["refused_response_format"] += 1
            return web.json_response({"error": {"message": "response_format is not supported"}},
                                     status=400)
        self.in_flight += 1
        self.stats["max_in_flight"] = max(self.stats["max_in_flight"], self.in_flight)
        try:
            await asyncio.sleep(self.args.delay)
        finally:
            self.in_flight -= 1
        self.stats["answered"] += 1
        content = json.dumps(ticket(int(body.get("seed") or 0)))
        prompt = sum(len(m.get("content", "")) for m in body.get("messages", [])) // 4
        headers = {}
        if self.args.rpm and self.args.limit_headers:
            headers = {"x-ratelimit-limit-requests": str(self.args.rpm),
                       "x-ratelimit-remaining-requests": str(self.args.rpm - len(self.window)),
                       "x-ratelimit-reset-requests": "1s"}
        return web.json_response({
            "id": f"stub-{self.stats['answered']}", "object": "chat.completion",
            "created": int(time.time()), "model": body.get("model", "stub"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": len(content) // 4,
                      "total_tokens": prompt + len(content) // 4},
        }, headers=headers)

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "stub", "object": "model"}]})

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response({**self.stats, "sent_ms": self.sent_ms})


async def serve(args: argparse.Namespace) -> None:
    stub = Stub(args)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", stub.completions)
    app.router.add_get("/v1/models", stub.models)
    app.router.add_get("/stats", stub.get_stats)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=1024)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # the port picked for --port 0
    print(f"PORT {port}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--rpm", type=int, default=0, help="enforce requests per minute")
    parser.add_argument("--limit-headers", action="store_true",
                        help="advertise the rpm limit in x-ratelimit-* headers")
    parser.add_argument("--no-response-format", action="store_true",
                        help="answer 400 to requests with response_format")
    parser.add_argument("--throttle-every", type=int, default=0,
                        help="answer every Nth request with 429 and Retry-After: 0.5")
    parser.add_argument("--key", default="", help="require this bearer key")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
