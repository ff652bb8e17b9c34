"""Load time and generation speed of the embedded SmolLM2 model through LocalTransport.

Run: python bench/bench_local_model.py [--runs 3] [--max-tokens 128] [--threads 2]

Prints the import and load times (first load in this process), then for plain and for JSON-schema constrained
generation the median time to first token, decode speed (tokens/s after the first token, wall clock) and CPU
time per token. The load average is printed too: on a shared 2-core machine other work changes the wall-clock
figures a lot, and two llama-cpp threads suffer far more from it than one (they wait for each other).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from aetherflow.config.models import ModelConfig
from aetherflow.llm.local import MODEL_ID, LocalTransport
from aetherflow.llm.transport import TransportRequest

PROMPT = "Explain in a few sentences why unit tests are useful."
MODEL = ModelConfig(model=MODEL_ID, local=True, context_window=8192, capabilities=["json_schema", "streaming"])


class Summary(BaseModel):
    """A bounded reply shape, as the gateway would request it."""

    title: Annotated[str, StringConstraints(max_length=60)]
    points: list[Annotated[str, StringConstraints(max_length=80)]] = Field(max_length=3)


@dataclass
class Run:
    ttft_s: float
    total_s: float
    cpu_s: float
    completion_tokens: int

    @property
    def decode_tps(self) -> float:
        decode_s = self.total_s - self.ttft_s
        return (self.completion_tokens - 1) / decode_s if decode_s > 0 else 0.0

    @property
    def cpu_ms_per_token(self) -> float:
        """CPU time of this process per generated token (spin-waiting threads count too)."""
        return self.cpu_s * 1000 / self.completion_tokens if self.completion_tokens else 0.0


async def one_run(transport: LocalTransport, max_tokens: int, response_format: dict[str, Any] | None) -> Run:
    request = TransportRequest(
        alias="local",
        model=MODEL,
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=max_tokens,
        temperature=0.0,
        response_format=response_format,
    )
    start, cpu_start = time.perf_counter(), time.process_time()
    ttft: float | None = None
    tokens = 0
    async for chunk in transport.stream(request):
        if chunk.text and ttft is None:
            ttft = time.perf_counter() - start
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return Run(ttft_s=ttft if ttft is not None else total, total_s=total, cpu_s=cpu, completion_tokens=tokens)


def report(label: str, runs: list[Run]) -> None:
    ttft = statistics.median(r.ttft_s for r in runs)
    tps = statistics.median(r.decode_tps for r in runs)
    cpu_ms = statistics.median(r.cpu_ms_per_token for r in runs)
    tokens = statistics.median(r.completion_tokens for r in runs)
    print(
        f"{label:<12} ttft {ttft * 1000:7.0f} ms   decode {tps:6.1f} tokens/s (wall)"
        f"   {cpu_ms:5.1f} CPU ms/token   ({tokens:.0f} tokens, median of {len(runs)})"
    )


async def main(runs: int, max_tokens: int, threads: int) -> None:
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} cpus")
    start = time.perf_counter()
    import llama_cpp  # noqa: F401 - timed on its own: part of the first call's cost

    import_s = time.perf_counter() - start
    transport = LocalTransport(n_threads=threads)
    start = time.perf_counter()
    transport.load()
    load_s = time.perf_counter() - start
    print(f"import llama_cpp {import_s * 1000:.0f} ms   load (n_ctx 8192, {threads} threads) {load_s * 1000:.0f} ms")
    schema_format = {"type": "json_schema", "json_schema": {"name": "Summary", "schema": Summary.model_json_schema()}}
    for label, fmt in (("plain", None), ("json schema", schema_format)):
        results = [await one_run(transport, max_tokens, fmt) for _ in range(runs)]
        report(label, results)
    await transport.aclose()
    print(f"load average after:  {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2, help="llama-cpp threads (LocalTransport's default: 2)")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.max_tokens, args.threads))
