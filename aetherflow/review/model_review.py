"""The model part of a review: which agent (the routing table's "review" rule), the prompt, one bounded call.

`review_chain` answers "could any model review this?" from the settings alone (chain resolution and a
`find_spec` for the local model), so a hook with no key and no local model can stop before importing the gateway.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from aetherflow.config.models import Settings
from aetherflow.llm.chain import LocalOk, plan_call
from aetherflow.llm.types import CallRequest, Message
from aetherflow.review.diff import Diff, numbered_text, truncated_text
from aetherflow.review.findings import MAX_FINDINGS, Finding, ReviewReply

if TYPE_CHECKING:
    from aetherflow.llm.gateway import Gateway

REVIEW_TASK_TYPE = "review"
# A review reply is a short JSON list; this keeps a rambling (or local) model's cost and time in check.
REVIEW_MAX_TOKENS = 1200
_CHARS_PER_TOKEN = 4

INSTRUCTIONS = """Review the diff below ({source}). Report only real problems in the lines it adds (marked +):
bug risks, leftover debug code (print or console.log left for debugging, breakpoint(), debugger, commented-out
code), syntax errors, and secrets or credentials. Each line is prefixed with its line number in the new version
of the file: use that number, and the file path from the "### " header above it. At most {max_findings}
findings, one sentence each. When the diff is fine, reply {{"findings": []}}.
Reply with JSON only: {{"findings": [{{"file": "path", "line": 12, "severity": "low|medium|high",
"category": "bug|debug|syntax|secret|other", "message": "..."}}]}}"""


def review_agents(settings: Settings) -> list[str]:
    """The enabled agents of the "review" routing rule (the default rule when there is none), primary first."""
    rules = {rule.task_type: rule for rule in settings.routing.rules}
    rule = rules.get(REVIEW_TASK_TYPE) or rules.get(settings.routing.default_task_type)
    if rule is None:
        return []
    names = [rule.primary, *([rule.secondary] if rule.secondary else [])]
    return [name for name in names if name in settings.agents and settings.agents[name].enabled]


def review_chain(settings: Settings, environ: Mapping[str, str], local_ok: LocalOk) -> list[str]:
    """Every model alias that could serve the review agents now (empty: no key set and no local model)."""
    aliases: list[str] = []
    for agent in review_agents(settings):
        plan = plan_call(settings, CallRequest(messages=[], agent=agent), environ, local_ok)
        aliases.extend(alias for alias in plan.chain if alias not in aliases)
    return aliases


def messages_for(diff: Diff, settings: Settings, agent: str, repo_root: Path | None) -> tuple[list[Message], bool]:
    """The agent's prompt and the numbered, size-bounded diff; and whether the diff had to be cut."""
    from aetherflow.prompts import load_prompt

    shown = diff.model_copy(update={"text": numbered_text(diff.text)})
    text, cut = truncated_text(shown, settings.hooks.max_diff_chars)
    system = load_prompt(settings.agents[agent].prompt, repo_root)
    user = INSTRUCTIONS.format(source=diff.source, max_findings=MAX_FINDINGS) + "\n\n" + text
    return [Message(role="system", content=system), Message(role="user", content=user)], cut


def choose_agent(gateway: Gateway, diff: Diff) -> str:
    """The agent the router picks for this diff (the rule's secondary one for a large diff), within the budget."""
    from aetherflow.llm.pricing import resolve_price
    from aetherflow.orchestrator.plan import ExpectedOutput, TaskSpec
    from aetherflow.orchestrator.router import Router

    settings = gateway.settings
    router = Router(settings, gateway.availability, lambda alias: resolve_price(settings.models[alias]))
    task = TaskSpec(
        id="review", type=REVIEW_TASK_TYPE, description=f"Review {diff.source}", input_format="code",
        expected_output=ExpectedOutput(format="json"),
        estimated_tokens=min(len(diff.text), settings.hooks.max_diff_chars) // _CHARS_PER_TOKEN,
    )
    return router.route(task, gateway.budget.remaining_usd).agent


async def model_findings(
    gateway: Gateway, diff: Diff, repo_root: Path | None, notes: list[str]
) -> tuple[list[Finding], str, float]:
    """Ask the review agent about `diff`: (findings about files in the diff, model alias, cost in USD).

    Findings naming a file that is not in the diff are dropped (and counted in `notes`): a weak model invents.
    """
    agent = choose_agent(gateway, diff)
    messages, cut = messages_for(diff, gateway.settings, agent, repo_root)
    if cut:
        notes.append(f"the diff was longer than hooks.max_diff_chars ({gateway.settings.hooks.max_diff_chars}); "
                     "the model saw the first part only")
    request = CallRequest(
        messages=messages, agent=agent, output_schema=ReviewReply, max_tokens=REVIEW_MAX_TOKENS, stream=False,
        task_id="review",
    )
    result = await gateway.complete(request)
    assert isinstance(result.parsed, ReviewReply), "output_schema makes the gateway return a parsed reply"
    known = diff.paths()
    findings: list[Finding] = []
    for item in result.parsed.findings:
        path = item.file.removeprefix("b/").removeprefix("./")
        if path not in known:
            continue
        findings.append(Finding(file=path, line=item.line, severity=item.severity, category=item.category,
                                message=item.message.strip() or "(no explanation given)", source="model"))
    dropped = len(result.parsed.findings) - len(findings)
    if dropped:
        notes.append(f"{dropped} finding(s) about files not in the diff were ignored")
    return findings, result.alias, result.cost_usd
