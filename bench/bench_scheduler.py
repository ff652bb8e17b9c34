"""Scheduler benchmark: a 12-subtask plan shaped 1-4-4-2-1, one real Gateway call per subtask, against the scripted
server injecting known model latencies (time to first token, then words streamed at a fixed rate).

The server runs in a child process so that its threads do not compete with the client for the GIL (a real
provider is remote too). Prints:
- makespan vs the critical path (the longest chain of model time through the graph)      target <= 1.10 x
- speed-up vs running the same subtasks one after another (plain loop, same calls)        target >= 2.5 x
- overhead per subtask, everything but model time, with model time set to zero: through
  Scheduler + Router + Gateway + LiteLLM, and a bare litellm.acompletion call for
  comparison; AetherFlow's share is the difference                                        target <= 20 ms
- the scheduler's own cost per subtask (a RunTask that returns at once)
- peak memory of a 30-subtask run (tracemalloc peak during the run, and the process RSS)   target <= 300 MB
- cost of the routed calls vs the strongest model for every call (same token counts)

    python bench/bench_scheduler.py [--rounds 3] [--scale 1.0]

Model times here are 0.15 to 0.55 s, shorter than real subtasks, so the fixed per-call cost of the LiteLLM client
(tens of ms on a loaded 2-core machine) weighs more than it would in a real run; --scale shows the trend.

The speed-up depends on the latency profile: with equal latencies a 1-4-4-2-1 graph is at most 12 / 5 = 2.4 x
faster in parallel. The profile here has short planning and synthesis steps and longer work steps in between.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager

from aetherflow.events import CallFinished, EventBus
from aetherflow.llm._litellm import import_litellm
from aetherflow.llm.gateway import Gateway
from aetherflow.llm.pricing import cost_usd, resolve_price
from aetherflow.llm.types import CallRequest, Message
from aetherflow.orchestrator.plan import Plan, TaskSpec, layers
from aetherflow.orchestrator.router import RouteDecision, Router
from aetherflow.orchestrator.scheduler import Scheduler, TaskOutcome
from aetherflow.testing.server import RecordedRequest, Reply, ScriptedServer
from aetherflow.testing.settings import SCRIPTED_KEY, scripted_environ, scripted_settings

WORDS = 21
TOKENS_PER_S = 200.0
STREAM_S = (WORDS - 1) / TOKENS_PER_S
TASK_RE = re.compile(r"TASK (\S+)")
# Model time (s) per layer; subtasks within a layer vary a little.
PROFILE_12 = [[0.15], [0.40, 0.45, 0.50, 0.55], [0.35, 0.40, 0.45, 0.50], [0.30, 0.40], [0.15]]
PROFILE_30 = [[0.15], [0.3] * 6, [0.3] * 8, [0.3] * 8, [0.3] * 6, [0.15]]
TYPES = ["module_generation", "local_refactor", "validation", "analysis"]


# ---- the server, in a child process -------------------------------------------------------------------------


def latency_reply(model_s: dict[str, float], request: RecordedRequest) -> Reply:
    """Answer subtask "TASK <id>" after its model time: time to first token, then the words streamed."""
    match = TASK_RE.search(request.message_text())
    seconds = model_s.get(match.group(1), 0.0) if match else 0.0
    streamed = seconds > 0
    return Reply(text=" ".join(["done"] * WORDS), ttft_s=max(seconds - STREAM_S, 0.0) if streamed else 0.0,
                 tokens_per_s=TOKENS_PER_S if streamed else None, prompt_tokens=300, completion_tokens=WORDS)


def serve(model_s_json: str) -> None:
    """Child-process mode: serve until stdin closes, printing the base URL first."""
    model_s = json.loads(model_s_json)
    with ScriptedServer() as server:
        server.script = lambda request: latency_reply(model_s, request)
        print(server.base_url, flush=True)
        sys.stdin.read()


@contextmanager
def server_process(model_s: dict[str, float]) -> Iterator[str]:
    child = subprocess.Popen([sys.executable, __file__, "--serve", json.dumps(model_s)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        yield child.stdout.readline().strip()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=10)


# ---- plans ----------------------------------------------------------------------------------------------------


def build_plan(profile: list[list[float]], prefix: str = "") -> tuple[Plan, dict[str, float]]:
    """A layered plan where each subtask depends on one or two subtasks of the layer before."""
    tasks: list[TaskSpec] = []
    model_s: dict[str, float] = {}
    previous: list[str] = []
    for depth, layer in enumerate(profile):
        current = []
        for index, seconds in enumerate(layer):
            task_id = f"{prefix}L{depth}T{index}"
            deps = sorted({previous[index % len(previous)], previous[(index + 1) % len(previous)]}) if previous else []
            # Every fourth subtask is complex enough for the strong model.
            complexity = 0.9 if (depth + index) % 4 == 3 else 0.3
            tasks.append(TaskSpec(id=task_id, type=TYPES[(depth + index) % len(TYPES)], description=f"work {task_id}",
                                  depends_on=deps, complexity=complexity, estimated_tokens=300))
            model_s[task_id] = seconds
            current.append(task_id)
        previous = current
    return Plan(summary="bench", tasks=tasks), model_s


def critical_path_s(plan: Plan, model_s: dict[str, float]) -> float:
    finish: dict[str, float] = {}
    for layer in layers(plan):
        for task_id in layer:
            start = max((finish[d] for d in plan.task(task_id).depends_on), default=0.0)
            finish[task_id] = start + model_s[task_id]
    return max(finish.values())


# ---- the harness ----------------------------------------------------------------------------------------------


class Harness:
    """A gateway on the server, the router, and a RunTask making one gateway call per subtask."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.settings = scripted_settings(base_url, cache={"enabled": False}, gateway={"timeout_s": 30.0})
        self.bus = EventBus()
        self.finished: list[CallFinished] = []
        self.bus.subscribe(lambda e: self.finished.append(e) if isinstance(e, CallFinished) else None)
        self.gateway = Gateway(self.settings, self.bus, environ=scripted_environ())
        self.router = Router(self.settings, self.gateway.availability, lambda a: resolve_price(self.settings.models[a]))
        self.durations: dict[str, float] = {}

    async def run_task(self, task: TaskSpec, route: RouteDecision, deps: dict[str, TaskOutcome], attempt: int
                       ) -> TaskOutcome:
        prompt = f"TASK {task.id}\n{task.description}\n" + "\n".join(f"{k}: {v.output}" for k, v in deps.items())
        result = await self.gateway.complete(CallRequest(
            messages=[Message(role="user", content=prompt)], agent=route.agent, alias=route.alias,
            max_tokens=256, use_cache=False, task_id=task.id,
        ))
        return TaskOutcome(task_id=task.id, status="done", output=result.text[:40], cost_usd=result.cost_usd)

    def scheduler(self, max_concurrency: int) -> Scheduler:
        return Scheduler(self.settings, self.bus, self.router, self.run_task, max_concurrency=max_concurrency,
                         task_timeout_s=60.0, remaining_budget=lambda: self.gateway.budget.remaining_usd)

    async def scheduled(self, plan: Plan, max_concurrency: int) -> float:
        """Wall time of a scheduled run; each subtask's own duration is kept in `self.durations`."""
        started = time.perf_counter()
        outcomes = await self.scheduler(max_concurrency).run(plan, f"bench-{time.time_ns()}")
        elapsed = time.perf_counter() - started
        failed = [o for o in outcomes.values() if o.status != "done"]
        if failed:
            raise SystemExit(f"bench run failed: {failed[0].task_id}: {failed[0].error}")
        self.durations = {o.task_id: (o.ended_at or 0.0) - (o.started_at or 0.0) for o in outcomes.values()}
        return elapsed

    async def sequential(self, plan: Plan) -> float:
        """The same subtasks one after another in dependency order, without the scheduler."""
        outcomes: dict[str, TaskOutcome] = {}
        started = time.perf_counter()
        for task_id in (t for layer in layers(plan) for t in layer):
            task = plan.task(task_id)
            route = self.router.route(task, None)
            outcomes[task_id] = await self.run_task(task, route, {d: outcomes[d] for d in task.depends_on}, 1)
        return time.perf_counter() - started

    async def bare_litellm(self, calls: int) -> float:
        """Seconds per bare litellm.acompletion call (streamed, usage included) with zero model time."""
        litellm = import_litellm()
        started = time.perf_counter()
        for _ in range(calls):
            stream = await litellm.acompletion(
                model="openai/fast", api_base=self.base_url, api_key=SCRIPTED_KEY,
                messages=[{"role": "user", "content": "TASK zero"}], stream=True,
                stream_options={"include_usage": True}, timeout=30.0, max_retries=0, max_tokens=256,
            )
            async for _chunk in stream:
                pass
        return (time.perf_counter() - started) / calls


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


# ---- the measurements -----------------------------------------------------------------------------------------


def scaled(profile: list[list[float]], scale: float) -> list[list[float]]:
    return [[seconds * scale for seconds in layer] for layer in profile]


async def bench_12(rounds: int, scale: float) -> None:
    plan, model_s = build_plan(scaled(PROFILE_12, scale))
    warm_up, _ = build_plan([[0.0]], prefix="W")  # an id the server has no latency for: model time 0
    critical, total_model = critical_path_s(plan, model_s), sum(model_s.values())
    with server_process(model_s) as base_url:
        harness = Harness(base_url)
        await harness.sequential(warm_up)  # imports LiteLLM, opens connections
        makespans, observed = [], []
        for _ in range(rounds):
            makespans.append(await harness.scheduled(plan, 4))
            observed.append(makespans[-1] / critical_path_s(plan, harness.durations))
        plain = [await harness.sequential(plan) for _ in range(rounds)]
        overhead = await overhead_samples(harness, 12 * rounds)
        await harness.gateway.aclose()
    makespan, sequential = statistics.median(makespans), statistics.median(plain)
    ratio, speedup = makespan / critical, sequential / makespan
    print(f"12 subtasks, 1-4-4-2-1; model time: critical path {critical:.3f} s, sum {total_model:.3f} s "
          f"(upper bound of the speed-up: {total_model / critical:.2f} x)")
    print(f"makespan, median of {rounds}: {makespan:.3f} s (best {min(makespans):.3f} s); "
          f"/ critical path = {ratio:.3f} x   target <= 1.10  {verdict(ratio <= 1.10)}")
    print(f"  scheduling alone: makespan / critical path of the subtasks' observed durations (model time plus "
          f"per-call client overhead) = {statistics.median(observed):.3f} x")
    print(f"one after another: {sequential:.3f} s; speed-up {speedup:.2f} x   target >= 2.5  {verdict(speedup >= 2.5)}")
    (wall, bare_wall), (cpu, bare_cpu) = overhead
    print(f"non-model time per subtask (model time 0; a one-subtask plan through Scheduler + Router + Gateway + "
          f"LiteLLM, alternated with a bare LiteLLM streamed call; medians of {12 * rounds}):")
    print(f"  wall {wall:.1f} ms vs bare call {bare_wall:.1f} ms; CPU {cpu:.1f} ms vs bare call {bare_cpu:.1f} ms")
    ours = cpu - bare_cpu
    print(f"  AetherFlow's own share (CPU difference): {ours:.1f} ms   target <= 20  {verdict(ours <= 20)}")
    report_cost(harness)


async def overhead_samples(harness: Harness, n: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """Medians in ms of ((wall, bare wall), (CPU, bare CPU)) per zero-latency subtask; the two kinds of call
    alternate so that both see the same machine load."""
    samples: dict[str, list[float]] = {"wall": [], "bare_wall": [], "cpu": [], "bare_cpu": []}
    for index in range(n):
        plan = Plan(summary="one", tasks=[TaskSpec(id=f"Z{index}", type="local_refactor", description="zero",
                                                   estimated_tokens=300)])
        for kind, call in (("", lambda: harness.scheduled(plan, 1)), ("bare_", lambda: harness.bare_litellm(1))):
            wall, cpu = time.perf_counter(), time.process_time()
            await call()
            samples[f"{kind}wall"].append((time.perf_counter() - wall) * 1000)
            samples[f"{kind}cpu"].append((time.process_time() - cpu) * 1000)
    med = {k: statistics.median(v) for k, v in samples.items()}
    return (med["wall"], med["bare_wall"]), (med["cpu"], med["bare_cpu"])


def report_cost(harness: Harness) -> None:
    strong = resolve_price(harness.settings.models["strong"])
    assert strong is not None
    routed = sum(e.cost_usd for e in harness.finished)
    baseline = sum(cost_usd(strong, e.usage) for e in harness.finished)
    by_alias: dict[str, int] = {}
    for event in harness.finished:
        by_alias[event.alias] = by_alias.get(event.alias, 0) + 1
    print(f"cost of the {len(harness.finished)} gateway calls: routed ${routed:.6f} vs strongest model only "
          f"${baseline:.6f} ({routed / baseline:.0%}; calls per model {by_alias})")


async def scheduler_only(runs: int = 200) -> float:
    """Milliseconds per subtask of the scheduler and router alone: 30 subtasks whose RunTask returns at once."""
    plan, _ = build_plan(PROFILE_30)
    settings = scripted_settings("http://127.0.0.1:9/v1")
    router = Router(settings, lambda alias: (True, "ok"), lambda a: resolve_price(settings.models[a]))

    async def instant(task: TaskSpec, route: RouteDecision, deps: dict[str, TaskOutcome], attempt: int) -> TaskOutcome:
        return TaskOutcome(task_id=task.id, status="done", output="x")

    scheduler = Scheduler(settings, EventBus(), router, instant, task_timeout_s=10.0, remaining_budget=lambda: 5.0)
    started = time.perf_counter()
    for i in range(runs):
        await scheduler.run(plan, f"r{i}")
    return (time.perf_counter() - started) / (runs * len(plan.tasks)) * 1000


async def bench_30(scale: float) -> None:
    """A 30-subtask run at concurrency 4, timed; then again under tracemalloc (which slows Python) for memory."""
    plan, model_s = build_plan(scaled(PROFILE_30, scale))
    with server_process(model_s) as base_url:
        harness = Harness(base_url)
        await harness.sequential(build_plan([[0.0]], prefix="W")[0])
        elapsed = await harness.scheduled(plan, 4)
        tracemalloc.start()
        await harness.scheduled(plan, 4)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        await harness.gateway.aclose()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    shape = "-".join(str(len(layer)) for layer in PROFILE_30)
    print(f"30 subtasks ({shape}, concurrency 4): {elapsed:.3f} s; Python allocations peak during the run "
          f"{peak / 2**20:.1f} MB; process peak RSS {rss_mb:.0f} MB   target <= 300  {verdict(rss_mb <= 300)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs per measurement (the median is reported)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every model latency (default 1)")
    parser.add_argument("--serve", metavar="JSON", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return
    asyncio.run(bench_12(args.rounds, args.scale))
    alone_ms = asyncio.run(scheduler_only())
    print(f"scheduler + router alone, per subtask (instant RunTask, 30 subtasks): {alone_ms:.3f} ms")
    asyncio.run(bench_30(args.scale))


if __name__ == "__main__":
    main()
