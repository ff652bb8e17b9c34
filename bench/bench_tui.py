"""Flood the run screen with events and show that it keeps up: bounded queues, fast keys, flat memory.

A pipeline double publishes 1,000 events per second for 10 seconds (text deltas, cost ticks, state changes over
20 subtasks) on the bus, from the app's own event loop as the real pipeline does, while the headless app
(`App.run_test`, 80x24) redraws from the board ten times a second and a pilot presses keys.

Printed figures:
- events published and the rate achieved;
- the app's and the screen's message queues (sampled every 50 ms): the bus subscriber never posts messages, so
  they stay near zero whatever the event rate;
- the display backlog: events folded into the board since the previous redraw, i.e. what one redraw coalesces;
- key latency: from an up/down key reaching the app (sent the way Pilot sends it) until the plan table's cursor
  has moved, four times a second: p50, p95, max;
- Python heap (tracemalloc) and RSS after a 1 s warm-up and at the end.

    python bench/bench_tui.py [--rate 1000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import tracemalloc
from pathlib import Path

from pydantic import BaseModel
from textual import events

from aetherflow.events import CallFinished, CallTextDelta, EventBus, PlanReady, RunStarted, TaskStateChanged
from aetherflow.llm.types import Usage
from aetherflow.tui.app import RunApp
from aetherflow.tui.contracts import RunJob
from aetherflow.tui.widgets.plan_table import PlanTable

TASKS = [f"t{i:02d}" for i in range(20)]
RUN_ID = "bench-run"


class BenchResult(BaseModel):
    """What the flood pipeline returns: a run without a change set."""

    run_id: str
    status: str = "review"
    changeset: None = None
    summary: str | None = None
    cost_usd: float = 0.0
    message: str = "flood over"


def rss_mib() -> float:
    """Resident memory of this process in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_event(n: int):  # noqa: ANN201 - one of three event types
    """Event number `n` of the flood: 70% text deltas, 20% cost ticks, 10% state changes."""
    task = TASKS[n % len(TASKS)]
    kind = n % 10
    if kind < 7:
        return CallTextDelta(run_id=RUN_ID, task_id=task, call_id=f"c-{task}", text=f"token {n} ")
    if kind < 9:
        return CallFinished(run_id=RUN_ID, task_id=task, call_id=f"c-{n}", alias="fast", model_id="openai/fast",
                            agent="coder", usage=Usage(prompt_tokens=10, completion_tokens=1), cost_usd=0.00001,
                            latency_s=0.1)
    state = ("running", "retrying", "running", "done")[(n // 10) % 4]
    return TaskStateChanged(run_id=RUN_ID, task_id=task, state=state, agent="coder", alias="fast")


class FloodPipeline:
    """Publishes `rate` events per second for `seconds`, paced in 10 ms ticks with catch-up."""

    def __init__(self, bus: EventBus, rate: int, seconds: float) -> None:
        self.bus, self.rate, self.seconds = bus, rate, seconds
        self.published = 0
        self.started = 0.0
        self.done = asyncio.Event()

    async def run(self, request: str, *, images=None, resume_id=None) -> BenchResult:  # noqa: ANN001
        plan = {"summary": "flood", "tasks": [{"id": t, "type": "code_edit", "description": t} for t in TASKS]}
        self.bus.publish(RunStarted(run_id=RUN_ID, request=request, budget_usd=1.0))
        self.bus.publish(PlanReady(run_id=RUN_ID, plan=plan, routes={}))
        self.started = time.perf_counter()
        while (elapsed := time.perf_counter() - self.started) < self.seconds:
            target = int(elapsed * self.rate)
            while self.published < target:
                self.bus.publish(make_event(self.published))
                self.published += 1
            await asyncio.sleep(0.01)
        self.done.set()
        return BenchResult(run_id=RUN_ID)

    def apply(self, result, selection, *, commit=False):  # noqa: ANN001, ANN201 - never called: no change set
        raise AssertionError("the flood has no change set")

    def discard(self, result) -> None:  # noqa: ANN001
        raise AssertionError("the flood has no change set")

    def load_result(self, run_id: str) -> BenchResult:
        return BenchResult(run_id=run_id)


class Probe:
    """Counts what the screen has drawn: how many events each redraw folded in."""

    def __init__(self, pipeline: FloodPipeline) -> None:
        self.pipeline = pipeline
        self.seen_at_redraw = 0
        self.backlogs: list[int] = []

    def on_redraw(self) -> None:
        self.backlogs.append(self.pipeline.published - self.seen_at_redraw)
        self.seen_at_redraw = self.pipeline.published


async def key_latency(app: RunApp, table: PlanTable, key: str) -> float:
    """Seconds from a key reaching the app (as Pilot sends it, through the headless driver) until its effect,
    the plan table's cursor moving, is there. Pilot.press itself also waits for the process to go idle, which a
    flood never lets happen, so its round trip would measure that wait instead of the app."""
    before = table.cursor
    began = time.perf_counter()
    app._driver.send_message(events.Key(key, None))  # type: ignore[union-attr]
    while table.cursor == before and time.perf_counter() - began < 5:
        await asyncio.sleep(0.001)
    return time.perf_counter() - began


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


async def bench(rate: int, seconds: float) -> None:
    bus = EventBus()
    pipeline = FloodPipeline(bus, rate, seconds)
    app = RunApp(RunJob(request="flood the run screen"), pipeline, bus)
    probe = Probe(pipeline)
    queues: list[tuple[int, int]] = []
    keys: list[float] = []
    screen = app.run_screen
    original = screen.refresh_view

    def counted() -> None:
        original()
        probe.on_redraw()

    # Set before mounting: the screen's timer takes the method when it mounts.
    screen.refresh_view = counted  # type: ignore[method-assign]
    tracemalloc.start()
    async with app.run_test(size=(80, 24)) as pilot:
        await asyncio.sleep(1.0)  # warm-up: first layout, imports, caches
        heap_start, rss_start = tracemalloc.get_traced_memory()[0], rss_mib()
        table = screen.query_one(PlanTable)
        table.focus()
        next_key = time.perf_counter()
        while not pipeline.done.is_set():
            queues.append((app._message_queue.qsize(), screen._message_queue.qsize()))
            if time.perf_counter() >= next_key:
                keys.append(await key_latency(app, table, "down" if len(keys) % 2 == 0 else "up"))
                next_key = time.perf_counter() + 0.25
            await asyncio.sleep(0.05)
        flood_s = time.perf_counter() - pipeline.started
        await pilot.pause()
        heap_end, heap_peak = tracemalloc.get_traced_memory()
        rss_end = rss_mib()
        redraws = screen.redraws
    tracemalloc.stop()
    report(pipeline.published, flood_s, queues, probe.backlogs, keys, redraws,
           (heap_start, heap_end, heap_peak), (rss_start, rss_end))


def report(published: int, flood_s: float, queues: list[tuple[int, int]], backlogs: list[int], keys: list[float],
           redraws: int, heap: tuple[int, int, int], rss: tuple[float, float]) -> None:
    mib = 1024 * 1024
    print(f"events published      {published:,} in {flood_s:.1f} s ({published / flood_s:,.0f}/s)")
    print(f"redraws               {redraws} ({redraws / flood_s:.1f}/s)")
    print(f"app message queue     max {max(q[0] for q in queues)}, mean {statistics.mean(q[0] for q in queues):.2f}"
          f"  ({len(queues)} samples)")
    print(f"screen message queue  max {max(q[1] for q in queues)}, mean {statistics.mean(q[1] for q in queues):.2f}")
    tail = backlogs[len(backlogs) // 2:]
    print(f"events per redraw     max {max(backlogs)}, mean {statistics.mean(backlogs):.0f}; second half max "
          f"{max(tail)} (flat = no growing backlog)")
    ms = [k * 1000 for k in keys]
    print(f"key latency           p50 {percentile(ms, 0.5):.1f} ms, p95 {percentile(ms, 0.95):.1f} ms, "
          f"max {max(ms):.1f} ms ({len(ms)} presses)")
    print(f"python heap           {heap[0] / mib:.1f} MiB after warm-up -> {heap[1] / mib:.1f} MiB at end "
          f"(peak {heap[2] / mib:.1f} MiB)")
    print(f"rss                   {rss[0]:.1f} MiB after warm-up -> {rss[1]:.1f} MiB at end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000, help="events per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to flood")
    args = parser.parse_args()
    asyncio.run(bench(args.rate, args.seconds))


if __name__ == "__main__":
    main()
