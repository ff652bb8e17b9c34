"""The chaos runner of issue 7: one seeded run of the whole product against the chaos server, then its invariants.

A run: a fresh copy of examples/demo-app with the user's staged, unstaged and untracked changes (sometimes also
symbolic links pointing outside), a fake home and a sibling folder beside it holding canary bytes; the real
Pipeline (gateway over LiteLLM, router, scheduler, agents, workspace) against `ChaosScript`; then what a user does
with the result: accept everything (the `--yes` path), reject it, or accept and `aether undo`. The invariants are in
`chaos_checks.py`; a crash is any exception that is not an AetherError, and any error the product logged or left
unraised (a swallowed internal error is a crash that hides).
"""

from __future__ import annotations

import asyncio
import gc
import io
import logging
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from adversarial_support import fake_home, make_demo_repo, snapshot
from chaos_checks import Evidence, check_run, gave_up, outside_state, protected_state

from aetherflow.errors import AetherError
from aetherflow.events import CallFailed, CallFallback, CallFinished, CallRetry, Event
from aetherflow.orchestrator.pipeline import Pipeline, RunResult
from aetherflow.services import Services
from aetherflow.testing.chaos import ChaosScript, ChaosWorld
from aetherflow.testing.server import ScriptedServer
from aetherflow.testing.settings import scripted_environ, scripted_settings

EndAction = Literal["accept", "reject", "undo"]
SIBLING_CANARY = "CHAOS-SIBLING-CANARY-7f3e"
REQUESTS = ["add a logout_all function to app/auth.py", "document the session model",
            "make login errors clearer", "refactor the server handlers"]
_WATCHED_LOGGERS = ("aetherflow", "asyncio")


@dataclass(frozen=True)
class RunConfig:
    """What varies between runs besides the replies: limits, capabilities, and what the user does at the end."""

    seed: int
    budget_usd: float | None
    max_retries: int
    breaker_failures: int
    fault_rate: float
    max_concurrency: int
    fast_tools: bool
    strong_json: bool
    end: EndAction
    links: bool
    checks: bool
    request: str

    @classmethod
    def from_seed(cls, seed: int) -> RunConfig:
        rng = random.Random(f"{seed}/config")
        return cls(
            seed=seed, budget_usd=rng.choice([None, 0.02, 0.05, 0.2, 1.0]), max_retries=rng.choice([0, 1, 2]),
            breaker_failures=rng.choice([2, 3, 5]), fault_rate=rng.choice([0.0, 0.08, 0.15, 0.3]),
            max_concurrency=rng.choice([1, 2, 3]), fast_tools=rng.random() < 0.8, strong_json=rng.random() < 0.8,
            end=rng.choices(["accept", "reject", "undo"], [5, 2, 3])[0], links=rng.random() < 0.3,
            checks=rng.random() < 0.15, request=rng.choice(REQUESTS),
        )

    def settings_overrides(self) -> dict[str, Any]:
        """Small timeouts, few retries, no backoff, no response cache (so every call reaches the chaos server)."""
        fast_caps = ["tools", "json_schema", "streaming"] if self.fast_tools else ["json_schema", "streaming"]
        strong_caps = ["tools", "json_schema", "streaming"] if self.strong_json else ["tools", "streaming"]
        # The demo app's own check (its aetherflow.toml is not read here), with this interpreter: the run_check
        # tool and the run-wide fix round then run a real command in the worktree.
        checks = {"commands": {"tests": f"{sys.executable} -m unittest -q"}, "timeout_s": 60.0} if self.checks else {}
        return {
            "checks": checks,
            "gateway": {"timeout_s": 8.0, "max_retries": self.max_retries, "backoff_initial_s": 0.0,
                        "backoff_max_s": 0.0, "breaker_failures": self.breaker_failures},
            "budget": {"per_run_usd": self.budget_usd, "per_day_usd": None},
            "cache": {"enabled": False},
            "models": {"fast": {"capabilities": fast_caps}, "strong": {"capabilities": strong_caps}},
        }


@dataclass
class RunReport:
    """How one chaos run went: its outcome, crashes (with tracebacks), violated invariants, what was sent."""

    seed: int
    config: RunConfig
    outcome: str = ""
    crashes: list[str] = field(default_factory=list)
    violations: list[tuple[str, str]] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    budget_overruns: int = 0
    gave_up: bool = False

    @property
    def ok(self) -> bool:
        return not self.crashes and not self.violations

    def describe(self) -> str:
        lines = [f"seed {self.seed} ({self.config}): {self.outcome}"]
        lines += [f"  CRASH {c}" for c in self.crashes]
        lines += [f"  VIOLATION {kind}: {detail}" for kind, detail in self.violations]
        return "\n".join(lines)


class _Watch(logging.Handler):
    """Collects what would otherwise pass unnoticed: errors the product logged, thread and unraisable exceptions."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.crashes: list[str] = []
        self.overruns = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            trace = "".join(traceback.format_exception(*record.exc_info)) if record.exc_info else ""
            self.crashes.append(f"logged by {record.name}: {record.getMessage()}\n{trace}")
        elif "the estimate was too low" in record.getMessage():
            self.overruns += 1

    @contextmanager
    def watching(self, home: Path, repo: Path, tmp: Path) -> Iterator[None]:
        """Watch, with the process set up as a user's: in the repository, HOME at the fake home, and temporary
        files in the run's own `tmp` folder (checked empty afterwards)."""
        loggers = [logging.getLogger(name) for name in _WATCHED_LOGGERS]
        old_thread, old_unraisable, old_home = threading.excepthook, sys.unraisablehook, os.environ.get("HOME")
        old_cwd, old_tmp = Path.cwd(), tempfile.tempdir
        threading.excepthook = lambda args: self.crashes.append(
            f"thread {args.thread.name if args.thread else '?'}: "
            + "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)))
        sys.unraisablehook = lambda unraisable: self.crashes.append(
            f"unraisable in {unraisable.object!r}: {unraisable.exc_type.__name__}: {unraisable.exc_value}")
        os.environ["HOME"] = str(home)  # "~" in any path the product expands lands in the watched fake home
        tempfile.tempdir = str(tmp)
        os.chdir(repo)  # a stray write relative to the working folder lands in the user's tree, where it shows
        for logger in loggers:
            logger.addHandler(self)
        try:
            yield
        finally:
            # Collected now, what this run left unclosed is reported against this run, not a later one.
            gc.collect()
            for logger in loggers:
                logger.removeHandler(self)
            os.chdir(old_cwd)
            tempfile.tempdir = old_tmp
            threading.excepthook, sys.unraisablehook = old_thread, old_unraisable
            if old_home is None:
                os.environ.pop("HOME", None)
            else:
                os.environ["HOME"] = old_home


class ChaosRunner:
    """Runs seeds one after another in folders under `base`, all against one chaos-scripted server.

    Every run uses the same event loop, as a long-lived session (the TUI) does: a loop per run would leave
    LiteLLM's per-loop HTTP clients behind, and their "Unclosed client session" errors, once its client cache
    evicts them, would be charged to whichever run is active. Use it as a context manager (it owns the loop).
    """

    def __init__(self, base: Path, server: ScriptedServer, *, keep: bool = False) -> None:
        self.base = base
        self.server = server
        self.keep = keep
        self._loop = asyncio.Runner()

    def __enter__(self) -> ChaosRunner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._loop.close()

    def run(self, seed: int) -> RunReport:
        config = RunConfig.from_seed(seed)
        report = RunReport(seed, config)
        started = time.monotonic()
        parent = self.base / f"seed-{seed}"
        try:
            self._run(parent, config, report)
        except Exception:  # noqa: BLE001 - the runner reports a crash of its own set-up too, with the seed
            report.crashes.append("runner: " + traceback.format_exc())
        finally:
            self.server.script = None
            self.server.forget_requests()
            report.seconds = time.monotonic() - started
            if report.ok and not self.keep:
                shutil.rmtree(parent, ignore_errors=True)
        return report

    def _run(self, parent: Path, config: RunConfig, report: RunReport) -> None:
        repo, home, sibling = self._lay_out(parent, config)
        # Files outside that exist (an edit or a delete would change them) and that do not (a create would add).
        outside = [home / ".bashrc", home / ".ssh" / "id_rsa", home / ".ssh" / "authorized_keys",
                   sibling / "secret.txt", sibling / "new-file.txt", parent / "escape.txt"]
        world = ChaosWorld(files=_texts(repo), outside=[str(p) for p in outside],
                           links=["linked-home", "linked-secret.txt"] if config.links else [])
        script = ChaosScript(config.seed, world, fault_rate=config.fault_rate)
        evidence = Evidence(
            repo=repo, parent=parent, before=snapshot(repo), outside_before=outside_state(parent, repo),
            protected_before=protected_state(repo), budget_usd=config.budget_usd,
            canaries=[b"AAAAfakekeymaterial", SIBLING_CANARY.encode(), b"root:x:0:0"],
        )
        settings = scripted_settings(self.server, **config.settings_overrides())
        services = Services(settings, repo, environ=scripted_environ())
        events: list[Event] = []
        services.bus.subscribe(lambda e: events.append(e) if isinstance(
            e, CallFinished | CallFailed | CallRetry | CallFallback) else None)
        watch = _Watch()
        self.server.script = script
        try:
            with watch.watching(home, repo, parent / "tmp"):
                result = self._pipeline(services, config, report)
                evidence.result = result
                evidence.applied = self._end(services, result, config.end, report)
        finally:
            if services.ledger is not None:
                evidence.ledger_rows = [dict(r) for r in services.ledger.query(
                    "SELECT call_id, run_id, status, cost_usd FROM calls")]
                services.ledger.close()
        report.crashes += watch.crashes
        report.budget_overruns = watch.overruns
        report.kinds = Counter(script.tally.kinds)
        evidence.events, evidence.tally = events, script.tally
        report.gave_up = gave_up(events)
        evidence.requests = [r.raw_body for r in self.server.completion_requests()]
        report.violations += check_run(evidence)

    @staticmethod
    def _lay_out(parent: Path, config: RunConfig) -> tuple[Path, Path, Path]:
        repo = make_demo_repo(parent / "repo")
        home = fake_home(parent / "victim-home")
        sibling = parent / "sibling"
        sibling.mkdir()
        (parent / "tmp").mkdir()
        (sibling / "secret.txt").write_text(f"{SIBLING_CANARY}\n")
        if config.links:
            (repo / "linked-home").symlink_to(home, target_is_directory=True)
            (repo / "linked-secret.txt").symlink_to(sibling / "secret.txt")
        return repo, home, sibling

    def _pipeline(self, services: Services, config: RunConfig, report: RunReport) -> RunResult | None:
        pipeline = Pipeline(services, max_concurrency=config.max_concurrency)

        async def drive() -> RunResult:
            try:
                return await pipeline.run(config.request)
            finally:
                await services.gateway.aclose()

        try:
            result = self._loop.run(drive())
        except AetherError as exc:
            report.outcome = f"stopped: {type(exc).__name__}"
            return None
        except Exception:  # noqa: BLE001 - anything but an AetherError reaching the user is a crash
            report.outcome = "crashed"
            report.crashes.append("pipeline.run: " + traceback.format_exc())
            return None
        report.outcome = f"{result.status}, {len(result.changeset.files) if result.changeset else 0} file(s)"
        return result

    def _end(self, services: Services, result: RunResult | None, end: EndAction, report: RunReport) -> list[str]:
        """What the user does with the result; returns the files left applied (none after reject or undo).

        Apply may refuse with an AetherError (a clear refusal keeps every byte: checked as untouched). Undo right
        after an apply, with nothing changed in between, must work: its refusal is a violation.
        """
        if result is None or result.changeset is None or not result.changeset.files:
            return []
        from rich.console import Console

        from aetherflow.cli.review import review_and_apply
        from aetherflow.workspace.apply import undo_last

        pipeline = Pipeline(services)
        step: str = end
        try:
            if end == "reject":
                pipeline.discard(result)
                report.outcome += ", rejected"
                return []
            console = Console(file=io.StringIO(), width=200)
            outcome = review_and_apply(console, pipeline, result, yes=True, commit=False, ask=None)
            applied = outcome.record.files if outcome.record is not None else []
            report.outcome += f", applied {len(applied)}"
            if end == "accept":
                return applied
            step = "undo"
            try:
                undo_last(pipeline.repo_root)
            except AetherError as exc:
                report.violations.append(("undo_refused", f"undo right after the apply refused: {exc.message}"))
                return applied
            report.outcome += ", undone"
            return []
        except AetherError as exc:
            report.outcome += f", refused: {exc.message[:120]}"
            return []
        except Exception:  # noqa: BLE001 - see _pipeline
            report.crashes.append(f"{step}: " + traceback.format_exc())
            return []


def _texts(repo: Path) -> dict[str, str]:
    """The repository's text files as the user has them (the chaos model copies SEARCH text from these)."""
    found = {}
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo)
        if rel.parts[0] in (".git", ".aetherflow") or path.is_symlink() or not path.is_file():
            continue
        try:
            found[rel.as_posix()] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
    return found


def summarize(reports: list[RunReport], wall_s: float) -> str:
    """The figures of a chaos session, then every failing run (seed, configuration, crash or violation)."""
    violations = Counter(kind for r in reports for kind, _ in r.violations)
    replies = sum((r.kinds for r in reports), Counter())
    outcomes = Counter(r.outcome.split(",")[0] for r in reports)
    ends = Counter(part.strip().split(" ")[0] for r in reports for part in r.outcome.split(",")[2:])
    rate = len(reports) / wall_s if wall_s > 0 else 0.0
    lines = [
        f"chaos runs: {len(reports)} (seeds {reports[0].seed}..{reports[-1].seed})" if reports else "chaos runs: 0",
        f"crashes: {sum(1 for r in reports if r.crashes)}",
        f"violations: {sum(violations.values())} {dict(sorted(violations.items()))}",
        f"wall time: {wall_s:.1f} s, {rate:.2f} runs/s",
        f"outcomes: {dict(outcomes.most_common())}",
        f"after review: {dict(ends.most_common())}",
        f"replies: {sum(replies.values())} {dict(replies.most_common())}",
        f"runs where the client gave up on a whole reply (timeout, LiteLLM's repetition guard): "
        f"{sum(1 for r in reports if r.gave_up)}; "
        f"budget reservations below the real cost: {sum(r.budget_overruns for r in reports)}",
    ]
    lines += [r.describe() for r in reports if not r.ok]
    return "\n".join(lines)


def isolate_environment(folder: Path) -> None:
    """For a process outside pytest (the benchmark): AetherFlow state and git configuration in `folder`, no keys."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "gitconfig"
    config.write_text("[init]\n\tdefaultBranch = main\n[user]\n\tname = Chaos\n\temail = chaos@example.com\n")
    os.environ.update(AETHER_HOME=str(folder / "aether-home"), GIT_CONFIG_GLOBAL=str(config), GIT_CONFIG_NOSYSTEM="1")
    git_overrides = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")
    for name in [n for n in os.environ if n.endswith("_API_KEY") or n in git_overrides]:
        del os.environ[name]
