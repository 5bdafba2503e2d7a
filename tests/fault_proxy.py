"""A fault-injecting HTTP proxy for tests, on 127.0.0.1, in front of an OpenAI-compatible server.

Requests to /v1/chat/completions are forwarded to the upstream, except the faulty ones: the first
requests get one fault of each kind in turn (so every kind is exercised), and after that each
request gets a random fault with probability `--rate` (seeded). Kinds: `429` with Retry-After,
`500`, `503`, `stall` (no answer for longer than the client's timeout), `close` (the connection
is dropped without a response) and `malformed` (a 200 with a body that is not JSON).
`GET /faults` gives the count of each injected kind.

    python tests/fault_proxy.py --upstream http://127.0.0.1:8000 --stall 12 --rate 0.1
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random

import aiohttp
from aiohttp import web

KINDS = ["stall", "429", "500", "close", "malformed", "503"]


class Proxy:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.faults: collections.Counter[str] = collections.Counter()
        self.seen = 0
        self.session: aiohttp.ClientSession | None = None

    def pick(self) -> str | None:
        self.seen += 1
        kinds = [k for k in KINDS if k not in self.args.skip]
        if self.seen % 2 == 0 and self.seen // 2 <= len(kinds):
            return kinds[self.seen // 2 - 1]  # every other request, until each kind was used
        if self.seen > 2 * len(kinds) and self.rng.random() < self.args.rate:
            return self.rng.choice([k for k in kinds if k != "stall"])
        return None

    async def forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        fault = self.pick()
        if fault:
            self.faults[fault] += 1
        if fault == "429":
            return web.json_response({"error": {"message": "injected rate limit"}}, status=429,
                                     headers={"retry-after": "1"})
        if fault in ("500", "503"):
            return web.json_response({"error": {"message": f"injected {fault}"}},
                                     status=int(fault))
        if fault == "stall":  # the client gives up first; the upstream is never asked
            await asyncio.sleep(self.args.stall)
            return web.json_response({"error": {"message": "injected stall"}}, status=504)
        if fault == "close":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)  # never reaches the client
        if fault == "malformed":
            return web.Response(status=200, body=b'{"choices": [{"message": ',
                                content_type="application/json")
        assert self.session is not None
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("authorization", "content-type")}
        async with self.session.post(self.args.upstream + request.path, data=body,
                                     headers=headers) as upstream:
            payload = await upstream.read()
            keep = {k: v for k, v in upstream.headers.items()
                    if k.lower() == "content-type" or k.lower().startswith("x-ratelimit")}
            return web.Response(status=upstream.status, body=payload, headers=keep)

    async def counts(self, request: web.Request) -> web.Response:
        return web.json_response(dict(self.faults))


async def serve(args: argparse.Namespace) -> None:
    proxy = Proxy(args)
    proxy.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=900))
    app = web.Application()
    app.router.add_post("/v1/chat/completions", proxy.forward)
    app.router.add_get("/faults", proxy.counts)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port)
    await site.start()
    print(f"PORT {site._server.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:8000")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.1, help="random faults after the first")
    parser.add_argument("--stall", type=float, default=10.0, help="seconds a stall lasts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", nargs="*", default=[], help="fault kinds not to inject")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
