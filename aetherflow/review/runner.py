"""One review from start to verdict, under a time budget: diff, local secret scan, model review, policy.

Order matters for cost and safety: a secret in the added lines blocks at once, before any model is considered;
"could any model review this?" is answered from the settings before the gateway is imported; and the model pass
runs on its own event loop under `hooks.timeout_s`, so a hanging provider, a slow local model or a missing key
end in a one-line warning and exit status 0, never in a blocked commit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any

from aetherflow.config.models import Settings
from aetherflow.errors import AetherError
from aetherflow.review.diff import Diff, range_diff, staged_diff
from aetherflow.review.findings import Finding, ReviewReport, blocking

LOCAL_MODEL_FIX = "pip install 'aetherflow[local]'"
# How long a review cancelled by the time budget may take to clean up before it is abandoned (see _bounded).
CANCEL_GRACE_S = 0.2
# What the model pass returns: findings about the diff's files, the model alias that answered, the cost in USD.
Answer = tuple[list[Finding], str, float]


def review(
    repo_root: Path,
    settings: Settings,
    environ: Mapping[str, str],
    *,
    revision_range: str | None = None,
    timeout_s: float | None = None,
) -> ReviewReport:
    """Review the staged changes (or `revision_range`) and decide the exit status. Never raises for a model or
    network failure: those end as outcome "unreviewed" with a note. Git or usage errors still raise."""
    started = time.monotonic()
    budget_s = timeout_s if timeout_s is not None else settings.hooks.timeout_s
    diff = range_diff(repo_root, revision_range) if revision_range else staged_diff(repo_root)
    report = ReviewReport(source=diff.source, outcome="clean", exit_code=0, block_on=settings.hooks.block_on)
    if diff.empty:
        report.notes.append(f"nothing to review ({diff.source} are empty)" if not revision_range
                            else f"nothing to review in {diff.source}")
    elif not _scan(report, diff, settings, environ):
        _model_pass(report, diff, repo_root, _effective(settings), environ, budget_s - (time.monotonic() - started))
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _effective(settings: Settings) -> Settings:
    """The settings the review runs with: without the local-model substitution when hooks.use_local_model is off."""
    if settings.hooks.use_local_model or settings.gateway.missing_key != "local":
        return settings
    return settings.model_copy(update={"gateway": settings.gateway.model_copy(update={"missing_key": "error"})})


def _scan(report: ReviewReport, diff: Diff, settings: Settings, environ: Mapping[str, str]) -> bool:
    """The local secret scan; True (and the report blocked) when the added lines hold a secret."""
    from aetherflow.llm.redact import redactor_for
    from aetherflow.review.secrets import scan_diff

    secrets = scan_diff(diff, redactor_for(settings, environ))
    if not secrets:
        return False
    report.findings.extend(secrets)
    report.outcome, report.exit_code = "blocked", 1
    report.notes.append(
        f"commit blocked: {len(secrets)} secret(s) in the added lines (no model was called). Remove them and "
        "stage again; for a false positive, commit with --no-verify."
    )
    return True


def _model_pass(
    report: ReviewReport, diff: Diff, repo_root: Path, settings: Settings, environ: Mapping[str, str], left_s: float
) -> None:
    """Ask the review agent, within `left_s` seconds, and apply hooks.block_on to what it finds."""
    from aetherflow.llm.local_model import model_status
    from aetherflow.review.model_review import review_chain

    if not settings.hooks.model_review:
        report.notes.append("model review off (hooks.model_review = false): only the secret scan ran")
        return
    if not review_chain(settings, environ, lambda model: model_status(model)[0]):
        report.outcome = "skipped"
        report.notes.append(f"model review skipped, no model available: {_no_model_fix(settings)}. "
                            "The secret scan found nothing.")
        return
    if left_s <= 0:
        report.outcome = "unreviewed"
        report.notes.append(f"not reviewed: the time budget (hooks.timeout_s = {settings.hooks.timeout_s:g} s) "
                            "ran out before the model was asked")
        return
    try:
        findings, alias, cost = _bounded(_ask(repo_root, settings, environ, diff, report.notes), left_s)
    except TimeoutError:
        report.outcome = "unreviewed"
        report.notes.append(f"not reviewed: no answer within the time budget (hooks.timeout_s = "
                            f"{settings.hooks.timeout_s:g} s); the commit goes ahead")
        return
    except AetherError as exc:
        report.outcome = "unreviewed"
        report.notes.append(f"not reviewed: {exc.message}")
        return
    _apply_policy(report, findings, alias, cost, settings)


def _apply_policy(report: ReviewReport, findings: list[Finding], alias: str, cost: float, settings: Settings) -> None:
    report.findings.extend(findings)
    report.model, report.cost_usd = alias, cost
    report.outcome = "findings" if findings else "clean"
    stopping = blocking(findings, settings.hooks.block_on)
    if stopping:
        report.exit_code = 1
        report.notes.append(
            f"commit blocked: {len(stopping)} finding(s) at or above hooks.block_on = {settings.hooks.block_on}. "
            "Fix them, or commit with --no-verify (or AETHER_SKIP=1)."
        )


def _no_model_fix(settings: Settings) -> str:
    """What would let a model review: under privacy.local_only only the local model can (asking for a key that
    is already set, as this once did, sent the user the wrong way); otherwise a key or the local model."""
    if settings.privacy.local_only:
        return (f"privacy.local_only is on and the local model is not installed: {LOCAL_MODEL_FIX}, or turn "
                "local_only off")
    keys = _review_keys(settings)
    fix = f"set {' or '.join(keys)}" if keys else "configure a model for the review agent"
    local = f", or {LOCAL_MODEL_FIX}" if settings.gateway.missing_key == "local" else " (hooks.use_local_model is off)"
    return fix + local


def _review_keys(settings: Settings) -> list[str]:
    from aetherflow.review.model_review import review_agents

    keys: list[str] = []
    for name in review_agents(settings):
        agent = settings.agents[name]
        for alias in (agent.model, *agent.fallbacks):
            key = settings.models[alias].key_env
            if key and key not in keys:
                keys.append(key)
    return keys


def _bounded(work: Coroutine[Any, Any, Answer], timeout_s: float) -> Answer:
    """Run `work` on a fresh event loop for at most `timeout_s` seconds (TimeoutError past it).

    Past the budget the work is cancelled and given CANCEL_GRACE_S to clean up, then abandoned: its cleanup may
    wait on a worker thread (the local model lets go of its lock only between tokens, and reading a long prompt
    took 10 s past a 1 s budget), and the commit must not wait for it. The loop is closed without waiting for
    worker threads either; the hook's entry point and `aether review` exit with os._exit.
    """
    loop = asyncio.new_event_loop()
    task = loop.create_task(work)
    abandoned = False
    try:
        loop.run_until_complete(asyncio.wait({task}, timeout=timeout_s))
        if task.done():
            return task.result()
        task.cancel()
        loop.run_until_complete(asyncio.wait({task}, timeout=CANCEL_GRACE_S))
        abandoned = not task.done()
        if task.done() and not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it: the budget's verdict stands
        raise TimeoutError(f"no answer within {timeout_s:g} s")
    finally:
        if not abandoned:
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _ask(
    repo_root: Path, settings: Settings, environ: Mapping[str, str], diff: Diff, notes: list[str]
) -> Answer:
    from aetherflow.review.model_review import model_findings
    from aetherflow.services import Services

    services = Services(settings, repo_root, environ=environ, light_transport=True)
    gateway = services.gateway
    try:
        return await model_findings(gateway, diff, repo_root, notes)
    finally:
        await gateway.aclose()
        if services.ledger is not None:
            services.ledger.close()
