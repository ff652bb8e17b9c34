"""Gateway overhead: median latency of Gateway.complete minus that of a bare litellm.acompletion, same server.

Both sides stream from the same scripted OpenAI-compatible server on loopback and read the whole stream with
usage, so the difference is what the gateway adds: chain planning, redaction, token counting and the budget
reservation, breaker and slot bookkeeping, the per-chunk timeout, events and cost. The response cache is off
(a hit would skip the provider altogether); the budget is on, as it is by default.

    python bench/bench_gateway_overhead.py [--calls 300]      # target: difference <= 5 ms
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from aetherflow.events import EventBus
from aetherflow.llm._litellm import import_litellm
from aetherflow.llm.gateway import Gateway
from aetherflow.llm.types import CallRequest, Message
from aetherflow.testing.server import Reply, ScriptedServer
from aetherflow.testing.settings import SCRIPTED_KEY, scripted_environ, scripted_settings

PROMPT = "Summarise what the function parse_config in config/loader.py does, in two sentences."
REPLY = "It reads the layered TOML files, merges them key by key and validates the result into Settings."


async def timed(call: Callable[[], Awaitable[object]], n: int) -> list[float]:
    """Latencies in seconds of `n` sequential calls."""
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


async def run(calls: int, rounds: int) -> None:
    litellm = import_litellm()
    with ScriptedServer() as server:
        server.script = lambda request: Reply(text=REPLY, prompt_tokens=30, completion_tokens=20)
        settings = scripted_settings(server, gateway={"timeout_s": 30.0})
        gateway = Gateway(settings, EventBus(), environ=scripted_environ(), cache_dir=None)
        request = CallRequest(messages=[Message(role="user", content=PROMPT)], alias="fast", use_cache=False)

        async def direct() -> None:
            stream = await litellm.acompletion(
                model="openai/fast", api_base=server.base_url, api_key=SCRIPTED_KEY,
                messages=[{"role": "user", "content": PROMPT}], stream=True,
                stream_options={"include_usage": True}, timeout=30.0, max_retries=0, num_retries=0,
                max_tokens=4096, drop_params=True,
            )
            async for _chunk in stream:
                pass

        async def through_gateway() -> None:
            await gateway.complete(request)

        await timed(direct, 20)  # warm up: imports, connections, tiktoken, the redactor
        await timed(through_gateway, 20)
        direct_samples: list[float] = []
        gateway_samples: list[float] = []
        per_round = max(1, calls // rounds)
        for _ in range(rounds):  # interleaved, so drift in machine load hits both sides alike
            direct_samples += await timed(direct, per_round)
            gateway_samples += await timed(through_gateway, per_round)
        await gateway.aclose()

    direct_ms = statistics.median(direct_samples) * 1000
    gateway_ms = statistics.median(gateway_samples) * 1000
    print(f"calls per side:            {len(direct_samples)}")
    print(f"litellm.acompletion median: {direct_ms:.2f} ms")
    print(f"Gateway.complete median:    {gateway_ms:.2f} ms")
    print(f"added by the gateway:       {gateway_ms - direct_ms:.2f} ms (target <= 5 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per side (at least 200)")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds")
    args = parser.parse_args()
    asyncio.run(run(max(args.calls, 200), args.rounds))


if __name__ == "__main__":
    main()
