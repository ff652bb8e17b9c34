"""Task success on Exercism exercises: AetherFlow against one direct call of the same models, side by side.

Run: python bench/bench_tasks.py [--limit 30] [--only NAME,...] [--arms a,b,c,d,e,f] [--out FILE.json]

For every exercise a fresh git repository holds the stub and its tests, with `[checks.commands] tests = "python -m
pytest -q"`; success means the exercise's tests (restored from the pristine copy first) pass in that repository
afterwards. The arms, all in one run:
  a  one direct call of the cheap model (instructions + stub, "reply with the complete file")
  b  a, then one more call shown the test output when the tests fail (Aider's protocol)
  c  `aether run "<request>" --yes --no-tui --json` with the cheap model only
  d  the same with the strong model only
  e  the same with the cascade cheap -> strong
  f  one direct call of the strong model
The models default to Qwen2.5-Coder 0.5B (cheap) and 1.5B (strong) GGUF files run in-process
(`../shared/models/fetch-coder-gguf.sh 0.5b|1.5b` puts them in ~/.cache/aether-models); `--cheap-gguf` and
`--strong-gguf` name other files, and `--cheap ALIAS --strong ALIAS` use catalogue models instead (a provider key
set in the environment), unchanged otherwise. Each arm-exercise pair reports pass, first-try pass, tokens, CPU
seconds of everything the arm ran (model and checks, in this process or its children) and wall time; the table
gives per arm the pass rate, first-try pass rate, total tokens, total CPU seconds, median wall time per exercise
and failures by cause. The response cache is off, so no arm reuses another's answers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASKS = ROOT.parent / "shared" / "tasks" / "exercism-python"
MODELS = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "aether-models"
CHEAP_GGUF = MODELS / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
STRONG_GGUF = MODELS / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
AETHER = Path(sys.executable).with_name("aether")
TEST_COMMAND = "python -m pytest -q"
ARMS = "abcdef"
FEEDBACK_CHARS = 3000
_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.S)


@dataclass
class Exercise:
    name: str
    folder: Path
    solution: list[str]
    tests: list[str]
    helpers: list[str]
    instructions: str

    @property
    def request(self) -> str:
        """What a user would ask: the instructions, and where the work goes."""
        files = ", ".join(f"`{f}`" for f in self.solution)
        keep = "keeping the names of its functions and classes"
        return f"{self.instructions.strip()}\n\nImplement this in {files}, {keep}."


@dataclass
class Outcome:
    arm: str
    exercise: str
    passed: bool
    first_try: bool
    tokens: int
    cpu_s: float
    wall_s: float
    cause: str


@dataclass
class ArmSummary:
    arm: str
    label: str
    runs: int = 0
    passed: int = 0
    first_try: int = 0
    tokens: int = 0
    cpu_s: float = 0.0
    walls: list[float] = field(default_factory=list)
    causes: dict[str, int] = field(default_factory=dict)


def load_exercises(folder: Path, only: list[str], limit: int | None) -> list[Exercise]:
    found = []
    for path in sorted(p for p in folder.iterdir() if (p / ".meta" / "config.json").is_file()):
        if only and path.name not in only:
            continue
        files = json.loads((path / ".meta" / "config.json").read_text())["files"]
        docs = [path / ".docs" / n for n in ("introduction.md", "instructions.md", "instructions.append.md")]
        text = "\n\n".join(d.read_text() for d in docs if d.is_file())
        found.append(Exercise(path.name, path, files["solution"], files["test"], files.get("editor", []), text))
    return found[:limit] if limit else found


# ---- the repository of one exercise ---------------------------------------------------------------------------

def make_repo(exercise: Exercise, parent: Path) -> Path:
    repo = parent / exercise.name
    repo.mkdir(parents=True)
    for rel in [*exercise.solution, *exercise.tests, *exercise.helpers]:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(exercise.folder / rel, repo / rel)  # not copy2: the task folder may be read-only
    (repo / "aetherflow.toml").write_text(f'[checks.commands]\ntests = "{TEST_COMMAND}"\n')
    (repo / ".gitignore").write_text("__pycache__/\n.pytest_cache/\n")
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "exercise"], cwd=repo, check=True)
    return repo


def tests_pass(exercise: Exercise, repo: Path) -> tuple[bool, str]:
    """Restore the pristine tests, run them; (passed, output)."""
    for rel in exercise.tests:
        shutil.copyfile(exercise.folder / rel, repo / rel)
    try:
        done = subprocess.run(TEST_COMMAND.split(), cwd=repo, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return False, "the tests timed out after 120 s"
    return done.returncode == 0, done.stdout[-20000:] + done.stderr[-2000:]


def cpu_now() -> float:
    self_, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return self_.ru_utime + self_.ru_stime + children.ru_utime + children.ru_stime


# ---- direct calls (arms a, b, f) ------------------------------------------------------------------------------

class Direct:
    """One model called through AetherFlow's gateway with a plain prompt: no planning, no tools, no checks."""

    def __init__(self, alias: str, settings: object) -> None:
        from aetherflow.events import EventBus
        from aetherflow.llm.gateway import Gateway

        self.alias = alias
        self.gateway = Gateway(settings, EventBus(), environ=os.environ)  # type: ignore[arg-type]

    async def ask(self, messages: list[dict[str, str]]) -> tuple[str, int]:
        from aetherflow.llm.types import CallRequest, Message

        request = CallRequest(messages=[Message(role=m["role"], content=m["content"]) for m in messages],
                              alias=self.alias, temperature=0.0, max_tokens=2048, use_cache=False)
        result = await self.gateway.complete(request)
        return result.text, result.usage.prompt_tokens + result.usage.completion_tokens


def direct_prompt(exercise: Exercise, repo: Path) -> str:
    stubs = "\n\n".join(f"{rel}\n```python\n{(repo / rel).read_text()}```" for rel in exercise.solution)
    return (f"{exercise.request}\n\n{stubs}\n\nReply with the complete content of {exercise.solution[0]} in one "
            "```python code block.")


def write_reply(exercise: Exercise, repo: Path, reply: str) -> bool:
    blocks = _FENCE.findall(reply)
    if not blocks:
        return False
    (repo / exercise.solution[0]).write_text(max(blocks, key=len))
    return True


async def run_direct(direct: Direct, exercise: Exercise, repo: Path, retries: int) -> tuple[bool, bool, int, str]:
    messages = [{"role": "system", "content": "You are an expert Python programmer."},
                {"role": "user", "content": direct_prompt(exercise, repo)}]
    tokens, first_try = 0, False
    for attempt in range(retries + 1):
        reply, used = await direct.ask(messages)
        tokens += used
        if not write_reply(exercise, repo, reply):
            return False, False, tokens, "no code block"
        passed, output = tests_pass(exercise, repo)
        first_try = first_try or (passed and attempt == 0)
        if passed:
            return True, first_try, tokens, "passed"
        messages += [{"role": "assistant", "content": reply},
                     {"role": "user", "content": f"The tests fail:\n{output[-FEEDBACK_CHARS:]}\n\nReply with the "
                      f"complete corrected {exercise.solution[0]} in one ```python code block."}]
    return False, False, tokens, "tests failed"


# ---- AetherFlow (arms c, d, e) ---------------------------------------------------------------------------------

def run_aether(exercise: Exercise, repo: Path, env: dict[str, str], timeout: float) -> tuple[bool, bool, int, str]:
    subprocess.run([str(AETHER), "trust"], cwd=repo, env=env, capture_output=True, check=True)
    try:
        done = subprocess.run([str(AETHER), "run", exercise.request, "--yes", "--no-tui", "--json"], cwd=repo,
                              env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, False, ledger_tokens(repo), "timeout"
    try:
        payload = json.loads(done.stdout)
    except json.JSONDecodeError:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return False, False, ledger_tokens(repo), f"error: {tail[0][:80]}"
    checked = ledger_rows(repo, "SELECT validation_first_try FROM tasks WHERE validation_first_try IS NOT NULL")
    if not payload.get("applied"):
        # A subtask whose edits were never checked produced nothing usable; one that was checked failed the tests.
        return False, False, ledger_tokens(repo), "tests failed" if checked else "no edit"
    return True, ledger_first_try(repo), ledger_tokens(repo), "applied"


def ledger_rows(repo: Path, query: str) -> list[tuple]:
    path = repo / ".aetherflow" / "ledger.sqlite"
    if not path.is_file():
        return []
    with sqlite3.connect(path) as db:
        return db.execute(query).fetchall()


def ledger_tokens(repo: Path) -> int:
    rows = ledger_rows(repo, "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM calls")
    return int(rows[0][0]) if rows else 0


def ledger_first_try(repo: Path) -> bool:
    rows = ledger_rows(repo, "SELECT validation_first_try, attempts FROM tasks")
    return bool(rows) and all(r[0] == 1 and r[1] == 1 for r in rows)


# ---- configuration ---------------------------------------------------------------------------------------------

def model_entry(name: str, gguf: Path, threads: int) -> str:
    return (f'[models.{name}]\nmodel = "local/{name}"\ngguf = "{gguf}"\nlocal = true\ncontext_window = 8192\n'
            f'n_threads = {threads}\ncapabilities = ["streaming"]\nprice = {{ input = 0.0, output = 0.0 }}\n')


def agents_toml(chain: list[str]) -> str:
    """Every agent of the defaults pinned to `chain` (first model, then fallbacks), and the same local cascade."""
    from aetherflow.config.loader import DEFAULTS_FILE

    agents = tomllib.loads(DEFAULTS_FILE.read_text())["agents"]
    quoted = ", ".join(f'"{a}"' for a in chain)
    lines = [f'[gateway]\nlocal_alias = [{quoted}]\n', "[cache]\nenabled = false\n"]
    for name in agents:
        lines.append(f'[agents.{name}]\nmodel = "{chain[0]}"\nfallbacks = [{", ".join(repr(a) for a in chain[1:])}]\n')
    return "\n".join(lines).replace("'", '"')


def arm_home(base: Path, arm: str, models: str, chain: list[str]) -> Path:
    home = base / f"home-{arm}"
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text(models + "\n" + agents_toml(chain))
    return home


def arm_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AETHER_")}
    env.update(AETHER_HOME=str(home), PYTHONDONTWRITEBYTECODE="1")
    return env


def direct_settings(home: Path) -> object:
    """The settings an arm's `aether` process sees (its AETHER_HOME's user file), for the in-process direct arms."""
    from aetherflow.config.loader import load_settings

    previous = os.environ.get("AETHER_HOME")
    os.environ["AETHER_HOME"] = str(home)
    try:
        return load_settings(None, environ=arm_env(home))
    finally:
        if previous is None:
            os.environ.pop("AETHER_HOME", None)
        else:
            os.environ["AETHER_HOME"] = previous


# ---- the run ---------------------------------------------------------------------------------------------------

def arm_labels(cheap: str, strong: str) -> dict[str, str]:
    return {"a": f"one call of {cheap}", "b": f"{cheap} + 1 retry with test output",
            "c": f"AetherFlow, {cheap} only", "d": f"AetherFlow, {strong} only",
            "e": f"AetherFlow, cascade {cheap} -> {strong}", "f": f"one call of {strong}"}


async def run_arm(arm: str, exercise: Exercise, work: Path, ctx: dict) -> Outcome:
    repo = make_repo(exercise, work / arm)
    cpu, wall = cpu_now(), time.monotonic()
    if arm in "abf":
        direct = ctx["direct_strong"] if arm == "f" else ctx["direct_cheap"]
        passed, first, tokens, cause = await run_direct(direct, exercise, repo, retries=1 if arm == "b" else 0)
    else:
        passed, first, tokens, cause = run_aether(exercise, repo, ctx["env"][arm], ctx["timeout"])
    cpu_s, wall_s = cpu_now() - cpu, time.monotonic() - wall
    if arm in "cde" and passed:
        passed, _ = tests_pass(exercise, repo)
        cause = "passed" if passed else "applied, tests fail"
    return Outcome(arm, exercise.name, passed, first and passed, tokens, round(cpu_s, 2), round(wall_s, 2), cause)


def summarise(outcomes: list[Outcome], labels: dict[str, str]) -> list[ArmSummary]:
    summaries = {arm: ArmSummary(arm, labels[arm]) for arm in dict.fromkeys(o.arm for o in outcomes)}
    for o in outcomes:
        s = summaries[o.arm]
        s.runs += 1
        s.passed += o.passed
        s.first_try += o.first_try
        s.tokens += o.tokens
        s.cpu_s += o.cpu_s
        s.walls.append(o.wall_s)
        s.causes[o.cause] = s.causes.get(o.cause, 0) + 1
    return list(summaries.values())


def table(summaries: list[ArmSummary]) -> str:
    rows = ["| arm | what | pass | first try | tokens | CPU s | median wall s | total wall s | causes |",
            "|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        causes = ", ".join(f"{k} {v}" for k, v in sorted(s.causes.items()))
        rows.append(f"| {s.arm} | {s.label} | {s.passed}/{s.runs} ({s.passed / s.runs:.0%}) | {s.first_try}/{s.runs} "
                    f"| {s.tokens:,} | {s.cpu_s:.0f} | {statistics.median(s.walls):.1f} | {sum(s.walls):.0f} "
                    f"| {causes} |")
    return "\n".join(rows)


def write_results(out: Path, outcomes: list[Outcome], summaries: list[ArmSummary]) -> None:
    """The outcomes and the table so far, as JSON and Markdown beside it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"outcomes": [asdict(o) for o in outcomes],
                               "summary": [asdict(s) for s in summaries]}, indent=1))
    out.with_suffix(".md").write_text(table(summaries) + "\n")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=Path, default=TASKS)
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--only", default="", help="comma-separated exercise names")
    parser.add_argument("--arms", default=ARMS)
    parser.add_argument("--cheap", default=None, help="a catalogue alias instead of the cheap GGUF")
    parser.add_argument("--strong", default=None, help="a catalogue alias instead of the strong GGUF")
    parser.add_argument("--cheap-gguf", type=Path, default=CHEAP_GGUF)
    parser.add_argument("--strong-gguf", type=Path, default=STRONG_GGUF)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per AetherFlow run")
    parser.add_argument("--minutes", type=float, default=None,
                        help="start no new exercise after this many minutes (the table covers those finished)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default: bench/results/tasks-TIME.json)")
    return parser.parse_args()


async def main() -> None:
    args = parse_args()
    exercises = load_exercises(args.tasks, [n for n in args.only.split(",") if n], args.limit)
    cheap, strong = args.cheap or "bench-cheap", args.strong or "bench-strong"
    models = ""
    for role, alias, given, gguf in (("cheap", cheap, args.cheap, args.cheap_gguf),
                                     ("strong", strong, args.strong, args.strong_gguf)):
        if given is None:
            if not gguf.is_file():
                sys.exit(f"error: {gguf} does not exist; run ../shared/models/fetch-coder-gguf.sh, or --{role}-gguf")
            models += model_entry(alias, gguf, args.threads)
    base = Path(tempfile.mkdtemp(prefix="aether-bench-tasks-"))
    chains = {"a": [cheap], "b": [cheap], "c": [cheap], "d": [strong], "e": [cheap, strong], "f": [strong]}
    homes = {arm: arm_home(base, arm, models, chain) for arm, chain in chains.items() if arm in args.arms}
    ctx: dict = {"env": {arm: arm_env(home) for arm, home in homes.items()}, "timeout": args.timeout}
    if set("ab") & set(args.arms):
        ctx["direct_cheap"] = Direct(cheap, direct_settings(homes["a" if "a" in homes else "b"]))
    if "f" in args.arms:
        ctx["direct_strong"] = Direct(strong, direct_settings(homes["f"]))
    outcomes: list[Outcome] = []
    labels = arm_labels(cheap, strong)
    out = args.out or ROOT / "bench" / "results" / f"tasks-{time.strftime('%Y%m%d-%H%M%S')}.json"
    started = time.monotonic()
    for exercise in exercises:
        if args.minutes is not None and time.monotonic() - started > args.minutes * 60:
            print(f"stopping: --minutes {args.minutes:g} passed")
            break
        for arm in args.arms:
            outcome = await run_arm(arm, exercise, base / "work", ctx)
            outcomes.append(outcome)
            print(f"{exercise.name:28} {arm} {'PASS' if outcome.passed else 'fail':4} {outcome.wall_s:6.1f}s "
                  f"{outcome.cpu_s:6.1f} cpu-s {outcome.tokens:6} tok  {outcome.cause}", flush=True)
        write_results(out, outcomes, summarise(outcomes, labels))  # after each exercise: a stop loses nothing
    summaries = summarise(outcomes, labels)
    done = len({o.exercise for o in outcomes})
    print(f"\n{done} exercises, {time.monotonic() - started:.0f} s in all\n")
    print(table(summaries))
    print(f"\nwrote {out} and {out.with_suffix('.md')}")
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    import asyncio

    asyncio.run(main())
