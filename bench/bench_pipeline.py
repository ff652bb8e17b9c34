"""Benchmark of the whole pipeline (plan, 12 subtasks shaped 1-4-4-2-1, synthesis) against a scripted server with
known model latencies, through the real gateway, router, scheduler, agents and worktree.

It reports: the makespan against the critical path (target <= 1.10x), the speed-up over the same run with one
subtask at a time (target >= 2.5x), the orchestration overhead per subtask, i.e. its wall time minus its scripted
model time (target <= 20 ms), the peak memory of a 30-subtask run in a child process (target <= 300 MB), and the
run's cost against sending every call to the strongest model (the orchestrator's, sonnet), both from the ledger.

The catalogue is the shipped one with each alias pointed at the scripted server (`openai/<alias>`) and its real
price kept, so routing and prices are the real ones.

    python bench/bench_pipeline.py            # all figures (about a minute on 2 cores)
    python bench/bench_pipeline.py --json     # the same as one JSON object
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Before any aetherflow import: state, caches and keys stay inside a temporary folder.
_TMP = Path(tempfile.mkdtemp(prefix="aether-bench-pipeline-"))
os.environ["AETHER_HOME"] = str(_TMP / "home")
for _name in [n for n in os.environ if n.endswith("_API_KEY")]:
    del os.environ[_name]

from aetherflow.config.loader import load_settings  # noqa: E402
from aetherflow.llm.pricing import resolve_price  # noqa: E402
from aetherflow.orchestrator.pipeline import Pipeline  # noqa: E402
from aetherflow.services import Services  # noqa: E402
from aetherflow.testing.script import RecordedRequest, Reply, ToolCallSpec  # noqa: E402
from aetherflow.testing.server import ScriptedServer  # noqa: E402

KEY_ENV = "SCRIPTED_API_KEY"
PLANNER_S = 0.30
SYNTHESIS_S = 0.20
# (id, task type, dependencies, scripted model seconds): 1-4-4-2-1, no layer barriers. A short analysis first
# and a short check last around longer code-writing layers (with equal times the shape caps the speed-up at 12/5).
SHAPE: list[tuple[str, str, list[str], float]] = [
    ("scan", "analysis", [], 0.20),
    ("m1", "module_generation", ["scan"], 0.80),
    ("m2", "module_generation", ["scan"], 0.80),
    ("m3", "local_refactor", ["scan"], 0.70),
    ("m4", "local_refactor", ["scan"], 0.70),
    ("t1", "module_generation", ["m1"], 0.80),
    ("t2", "local_refactor", ["m2"], 0.70),
    ("t3", "local_refactor", ["m3"], 0.70),
    ("t4", "documentation", ["m4"], 0.60),
    ("i1", "module_generation", ["t1", "t2"], 0.60),
    ("i2", "local_refactor", ["t3", "t4"], 0.50),
    ("check", "validation", ["i1", "i2"], 0.20),
]


# ---- the scripted team ---------------------------------------------------------------------------------------


# Agents of these types only read (analyst, verifier): their subtasks report in text instead of writing a file.
TEXT_TYPES = {"analysis", "validation"}


def _plan(shape: list[tuple[str, str, list[str], float]]) -> dict[str, Any]:
    tasks = [{
        "id": task_id, "type": task_type, "description": f"TASK[{task_id}]: write gen/{task_id}.py",
        "depends_on": deps, "estimated_tokens": 1500,
        "expected_output": {"format": "text" if task_type in TEXT_TYPES else "edits", "constraints": []},
    } for task_id, task_type, deps, _ in shape]
    return {"summary": f"benchmark plan of {len(tasks)} subtasks", "tasks": tasks}


def edit_tasks(shape: list[tuple[str, str, list[str], float]]) -> int:
    return sum(1 for _, task_type, _, _ in shape if task_type not in TEXT_TYPES)


def _task_of(text: str) -> str | None:
    start = text.find("TASK[")
    return text[start + 5 : text.index("]", start)] if start >= 0 else None


def team(shape: list[tuple[str, str, list[str], float]]) -> Any:
    """Planner, then per subtask two calls of half its model time each (create its file; say done), then the
    summary. Completion sizes are fixed so that costs are comparable between runs."""
    plan, seconds = _plan(shape), {task_id: s for task_id, _, _, s in shape}
    readers = {task_id for task_id, task_type, _, _ in shape if task_type in TEXT_TYPES}

    def script(req: RecordedRequest) -> Reply:
        messages = req.body.get("messages", [])
        if req.body.get("response_format"):
            return Reply(json=plan, ttft_s=PLANNER_S, completion_tokens=600)
        if "Summarise" in str(messages[0].get("content")):
            return Reply(text="Benchmark summary.", ttft_s=SYNTHESIS_S, completion_tokens=150)
        task_id = _task_of(req.message_text())
        half = seconds.get(task_id or "", 0.0) / 2
        if messages[-1].get("role") == "tool":
            return Reply(text=f"{task_id} done", ttft_s=half, completion_tokens=40)
        if task_id in readers:
            call = ToolCallSpec(name="read_file", arguments={"path": "README.md"})
        else:
            content = f'"""Module {task_id}."""\n\nVALUE = {len(task_id or "")}\n'
            call = ToolCallSpec(name="create_file", arguments={"path": f"gen/{task_id}.py", "content": content})
        return Reply(tool_calls=[call], ttft_s=half, completion_tokens=400)

    return script


# ---- settings and repository ---------------------------------------------------------------------------------


def settings_for(base_url: str):  # noqa: ANN201 - Settings
    """The shipped catalogue, every alias on the scripted server with its real price; no cache; short timeouts."""
    shipped = load_settings(repo_root=None, environ={})
    models = {}
    for alias, model in shipped.models.items():
        if model.local:
            continue
        price = resolve_price(model)
        models[alias] = {"model": f"openai/{alias}", "api_base": base_url, "key_env": KEY_ENV,
                         "price": price.model_dump(exclude_none=True) if price else None, "max_concurrency": 8}
    flags = {"models": models, "cache": {"enabled": False}, "budget": {"per_run_usd": 50.0, "per_day_usd": 500.0},
             "gateway": {"timeout_s": 30.0, "missing_key": "error"}}
    return load_settings(repo_root=None, flags=flags, environ={KEY_ENV: "bench"})


def make_repo(root: Path) -> Path:
    root.mkdir(parents=True)
    for args in (["init", "-q"], ["config", "user.email", "b@example.invalid"], ["config", "user.name", "b"]):
        subprocess.run(["git", *args], cwd=root, check=True)
    (root / "README.md").write_text("benchmark repository\n")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=root, check=True)
    return root


# ---- one run ---------------------------------------------------------------------------------------------------


async def run_once(shape: list[tuple[str, str, list[str], float]], concurrency: int, name: str) -> dict[str, Any]:
    """One full pipeline run in a fresh repository; wall time, per-subtask times, cost and baseline."""
    from aetherflow.ledger.stats import baseline_cost

    repo = make_repo(_TMP / name)
    with ScriptedServer() as server:
        server.script = team(shape)
        services = Services(settings_for(server.base_url), repo, environ={KEY_ENV: "bench"})
        pipeline = Pipeline(services, max_concurrency=concurrency)
        started = time.perf_counter()
        try:
            result = await pipeline.run("benchmark request")
        finally:
            await services.gateway.aclose()
        wall = time.perf_counter() - started
    assert result.status == "review" and len(result.changeset.files) == edit_tasks(shape), result.message
    ledger = services.ledger
    sonnet = resolve_price(services.settings.models["sonnet"])
    trace = pipeline.store.folder(result.run_id) / "trace.jsonl"
    call_s = ledger.query("SELECT task_id, SUM(latency_s) AS s, COUNT(*) AS n FROM calls WHERE run_id = ? "
                          "GROUP BY task_id", result.run_id)
    return {
        "wall_s": wall,
        "outcomes": {k: (o.started_at, o.ended_at, o.alias) for k, o in result.outcomes.items()},
        "call_s": {row["task_id"]: (float(row["s"]), int(row["n"])) for row in call_s},
        "fixed_s": fixed_costs(trace),
        "cost_usd": ledger.total_cost_usd(result.run_id),
        "baseline_usd": baseline_cost(ledger, sonnet) if sonnet else None,
        "calls": ledger.call_count(result.run_id),
    }


def fixed_costs(trace: Path) -> dict[str, float]:
    """Seconds spent outside subtasks and model calls, from the run's trace: before the planner's call (context),
    between the plan and the first subtask (worktree), and between the last subtask and the synthesis call
    (checks, change set)."""
    events = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines()]
    run_calls = [e for e in events if e["kind"] in ("call_started", "call_finished") and e["task_id"] is None]
    states = [e for e in events if e["kind"] == "task_state"]
    running = min(e["ts"] for e in states if e["state"] == "running")
    ended = max(e["ts"] for e in states if e["state"] in ("done", "failed", "skipped"))
    finished = next(e["ts"] for e in events if e["kind"] == "run_finished")
    return {
        "before_plan": run_calls[0]["ts"] - events[0]["ts"],
        "plan_to_first_subtask": running - run_calls[1]["ts"],
        "last_subtask_to_synthesis": run_calls[2]["ts"] - ended,
        "after_synthesis": finished - run_calls[3]["ts"],
    }


def critical_path_s(shape: list[tuple[str, str, list[str], float]]) -> float:
    """The longest chain of scripted model time through the subtasks' dependencies."""
    finish: dict[str, float] = {}
    for task_id, _, deps, seconds in shape:  # SHAPE is listed in dependency order
        finish[task_id] = max((finish[d] for d in deps), default=0.0) + seconds
    return max(finish.values())


def overheads_ms(run: dict[str, Any], shape: list[tuple[str, str, list[str], float]]) -> dict[str, list[float]]:
    """Per subtask, in ms: wall time minus its scripted model time ("model"), and wall time minus the measured
    latency of its calls ("calls": the orchestration alone: scheduling, agent loop, tools, validation, state)."""
    seconds = {task_id: s for task_id, _, _, s in shape}
    out: dict[str, list[float]] = {"model": [], "calls": [], "per_call_transport": []}
    for task_id, (start, end, _) in run["outcomes"].items():
        measured, calls = run["call_s"].get(task_id, (0.0, 0))
        out["model"].append(1000 * ((end - start) - seconds[task_id]))
        out["calls"].append(1000 * ((end - start) - measured))
        if calls:
            out["per_call_transport"].append(1000 * (measured - seconds[task_id]) / calls)
    return out


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def shape_of(n: int, width: int = 6) -> list[tuple[str, str, list[str], float]]:
    """n subtasks in layers of `width`, each depending on one subtask of the layer before."""
    shape = []
    for i in range(n):
        deps = [f"s{i - width}"] if i >= width else []
        shape.append((f"s{i}", "local_refactor", deps, 0.05))
    return shape


def child_peak(n: int) -> dict[str, Any]:
    """Run an n-subtask pipeline in this process and report its own peak RSS (run as a child process)."""
    asyncio.run(run_once(shape_of(2), 2, "warmup"))
    run = asyncio.run(run_once(shape_of(n), 4, f"peak{n}"))
    return {"subtasks": n, "wall_s": run["wall_s"], "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


# ---- the report ------------------------------------------------------------------------------------------------


def measure() -> dict[str, Any]:
    asyncio.run(run_once(shape_of(2), 2, "warmup"))  # imports LiteLLM and tree-sitter outside the timed runs
    parallel = asyncio.run(run_once(SHAPE, 4, "parallel"))
    sequential = asyncio.run(run_once(SHAPE, 1, "sequential"))
    child = subprocess.run([sys.executable, __file__, "--child", "30"], capture_output=True, text=True, check=True)
    peak = json.loads(child.stdout.strip().splitlines()[-1])
    dag = critical_path_s(SHAPE)
    critical = PLANNER_S + dag + SYNTHESIS_S
    overhead = overheads_ms(parallel, SHAPE)
    return {
        "load_average_1m": os.getloadavg()[0],
        "critical_path_s": critical,
        "makespan_s": parallel["wall_s"],
        "makespan_over_critical": parallel["wall_s"] / critical,
        "subtask_phase_s": _phase(parallel),
        "subtask_phase_over_dag_path": _phase(parallel) / dag,
        "sequential_s": sequential["wall_s"],
        "speedup": sequential["wall_s"] / parallel["wall_s"],
        "subtask_phase_speedup": _phase(sequential) / _phase(parallel),
        "overhead_ms_mean": _mean(overhead["calls"]),
        "overhead_ms_max": max(overhead["calls"]),
        "overhead_with_transport_ms_mean": _mean(overhead["model"]),
        "transport_ms_per_call": _mean(overhead["per_call_transport"]),
        "fixed_s": parallel["fixed_s"],
        "peak_rss_mb_30": peak["peak_rss_mb"],
        "cost_usd": parallel["cost_usd"],
        "strongest_only_usd": parallel["baseline_usd"],
        "models": sorted({alias for _, _, alias in parallel["outcomes"].values()}),
        "calls": parallel["calls"],
    }


def _phase(run: dict[str, Any]) -> float:
    """From the first subtask's start to the last one's end."""
    times = run["outcomes"].values()
    return max(e for _, e, _ in times) - min(s for s, _, _ in times)


def report(f: dict[str, Any]) -> None:
    print(f"(2 cores, 1-minute load average {f['load_average_1m']:.1f} when measured)")
    print(f"makespan {f['makespan_s']:.2f} s vs critical path {f['critical_path_s']:.2f} s "
          f"(planner {PLANNER_S} + subtasks {critical_path_s(SHAPE):.2f} + synthesis {SYNTHESIS_S}): "
          f"{f['makespan_over_critical']:.2f}x (target <= 1.10)")
    print(f"  subtask phase {f['subtask_phase_s']:.2f} s vs its dependency path: {f['subtask_phase_over_dag_path']:.2f}x")
    print("  outside subtasks and calls: " + ", ".join(f"{k.replace('_', ' ')} {1000 * v:.0f} ms"
                                                    for k, v in f["fixed_s"].items()))
    print(f"one subtask at a time: {f['sequential_s']:.2f} s, speed-up {f['speedup']:.2f}x for the whole run, "
          f"{f['subtask_phase_speedup']:.2f}x for the subtasks (target >= 2.5)")
    print(f"orchestration overhead per subtask (wall - its calls' latency): mean {f['overhead_ms_mean']:.1f} ms, "
          f"max {f['overhead_ms_max']:.1f} ms (target <= 20)")
    print(f"  with LiteLLM + HTTP per call ({f['transport_ms_per_call']:.1f} ms a call, 2 calls a subtask): "
          f"mean {f['overhead_with_transport_ms_mean']:.1f} ms a subtask")
    print(f"peak memory of a 30-subtask run (child process RSS): {f['peak_rss_mb_30']:.0f} MB (target <= 300)")
    baseline = f["strongest_only_usd"]
    saved = f" (saved {100 * (1 - f['cost_usd'] / baseline):.0f}%)" if baseline else ""
    print(f"cost of the run ({f['calls']} calls; subtasks on {', '.join(f['models'])}; planner and synthesis on "
          f"sonnet): ${f['cost_usd']:.4f} vs sonnet for every call ${baseline:.4f}{saved}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_peak(args.child)))
        return
    figures = measure()
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        report(figures)


if __name__ == "__main__":
    main()
