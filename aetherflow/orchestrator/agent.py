"""The agent tool loop (ReAct): call the model with the task and its tools, run what it asks, feed back, repeat.

The loop ends when the model answers without asking for anything (done), or fails with a reason: the step limit,
the same action requested again and again with nothing changed in between, the subtask's token budget, or (for a
task that must edit files) an answer that changed nothing. Models with tool calling use native tool calls; the
others get the text protocol of prompts/tool_protocol.md, whose edit blocks become the same ToolCalls, so both
paths share one safety path: the ToolBox, which runs only the agent's allowlisted tools. That is what makes
instructions planted in files or tool output harmless; the loop never interprets model text as a command.

Gateway failures (budget reached, every provider down, no model available) are not caught here: they propagate
to the scheduler, whose failure policy decides between retry, fallback and stopping the run.
"""

from __future__ import annotations

import json
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from aetherflow.config.models import AgentConfig
from aetherflow.llm.types import CallRequest, CallResult, ImagePart, Message, ToolCall, Usage
from aetherflow.orchestrator import text_protocol
from aetherflow.orchestrator.agent_prompt import initial_messages, render_task
from aetherflow.orchestrator.plan import TaskSpec
from aetherflow.orchestrator.tool_specs import WRITING_TOOLS
from aetherflow.orchestrator.tools import ToolBox, ToolResult, truncate_middle

PROTOCOL_PROMPT = "tool_protocol.md"
# How text_protocol's errors about an edit block that could not be read begin (a stray marker in prose differs).
BROKEN_BLOCK = "the edit block starting at line"
_ANSWER_EXCERPT_CHARS = 160


class CompletionGateway(Protocol):
    """What the loop needs of aetherflow.llm.gateway.Gateway."""

    async def complete(self, request: CallRequest) -> CallResult: ...


class AgentLimits(BaseModel):
    """Bounds of one subtask's loop. An action requested `max_repeats` times with no write in between stops it."""

    max_steps: int = Field(default=12, ge=1)
    max_repeats: int = Field(default=3, ge=2)
    max_tokens_total: int = Field(default=200_000, ge=1)


class AgentResult(BaseModel):
    """How a subtask's loop ended: its final text, the files it changed, and what it consumed."""

    status: Literal["done", "failed"]
    text: str
    reason: str = ""
    steps: int
    edits: list[str] = Field(default_factory=list)
    tool_calls: int = 0
    cost_usd: float = 0.0
    usage: Usage = Field(default_factory=Usage)


class _StopLoop(Exception):
    """Raised inside a step to end the loop with a failure reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def add_usage(total: Usage, more: Usage) -> Usage:
    """The sum of two usages, field by field."""
    return Usage(
        prompt_tokens=total.prompt_tokens + more.prompt_tokens,
        completion_tokens=total.completion_tokens + more.completion_tokens,
        cached_read_tokens=total.cached_read_tokens + more.cached_read_tokens,
        cache_write_tokens=total.cache_write_tokens + more.cache_write_tokens,
    )


def _action_key(call: ToolCall) -> str:
    """Name and arguments in a canonical form, so key order or spacing does not hide a repeat."""
    try:
        arguments = json.dumps(json.loads(call.arguments or "{}"), sort_keys=True)
    except ValueError:
        arguments = call.arguments
    return f"{call.name} {arguments}"


class _AgentLoop:
    """The state of one run_agent call."""

    def __init__(
        self, gateway: CompletionGateway, task: TaskSpec, alias: str, agent: AgentConfig, toolbox: ToolBox,
        limits: AgentLimits, supports_tools: bool, run_id: str | None, agent_name: str | None,
    ) -> None:
        self.gateway, self.task, self.alias, self.agent = gateway, task, alias, agent
        self.toolbox, self.limits, self.supports_tools = toolbox, limits, supports_tools
        self.run_id, self.agent_name = run_id, agent_name
        self.messages: list[Message] = []
        self.usage = Usage()
        self.cost_usd = 0.0
        self.steps = 0
        self.tool_calls = 0
        self.edits: list[str] = []
        self.repeats: dict[tuple[str, int], int] = {}
        self.write_failures: list[str] = []

    # ---- the loop ---------------------------------------------------------------------------------------

    async def run(self) -> AgentResult:
        try:
            for step in range(1, self.limits.max_steps + 1):
                self.steps = step
                result = await self._call()
                finished = await (self._tool_step(result) if self.supports_tools else self._text_step(result))
                if finished is not None:
                    return finished
                if self.usage.total_tokens > self.limits.max_tokens_total:
                    raise _StopLoop(f"token budget used up: {self.usage.total_tokens} tokens used, the limit per "
                                    f"subtask is {self.limits.max_tokens_total}")
        except _StopLoop as stop:
            return self._stopped(stop.reason)
        return self._stopped(f"step limit reached: the model did not finish within {self.limits.max_steps} steps")

    def _stopped(self, reason: str) -> AgentResult:
        """A failure by a limit; for an edit task that changed nothing, the last edit failure says why."""
        if self.task.expected_output.format == "edits" and not self.edits and self.write_failures:
            last = truncate_middle(self.write_failures[-1], 400)
            reason += f"; no usable edit was produced, the last failure: {last}"
        return self._result("failed", "", reason)

    async def _call(self) -> CallResult:
        specs = self.toolbox.specs() if self.supports_tools else []
        request = CallRequest(
            messages=list(self.messages), alias=self.alias, agent=self.agent_name, tools=specs or None,
            temperature=self.agent.temperature, max_tokens=self.agent.max_output_tokens, stream=True,
            run_id=self.run_id, task_id=self.task.id,
        )
        result = await self.gateway.complete(request)
        self.usage = add_usage(self.usage, result.usage)
        self.cost_usd += result.cost_usd
        return result

    async def _execute(self, call: ToolCall) -> ToolResult:
        """Run one call through the ToolBox, unless it repeats an action that already failed to move things."""
        key = (_action_key(call), self.toolbox.write_count)
        self.repeats[key] = self.repeats.get(key, 0) + 1
        if self.repeats[key] >= self.limits.max_repeats:
            raise _StopLoop(f"repeated the same action {self.repeats[key]} times with no change in between: "
                            f"{truncate_middle(key[0], 200)}")
        result = await self.toolbox.execute(call)
        self.tool_calls += 1
        if result.changed_path is not None and result.changed_path not in self.edits:
            self.edits.append(result.changed_path)
        if call.name in WRITING_TOOLS and not result.ok:
            self.write_failures.append(result.content)
        return result

    # ---- native tool calls ------------------------------------------------------------------------------

    async def _tool_step(self, result: CallResult) -> AgentResult | None:
        if not result.tool_calls:
            parsed = text_protocol.parse_reply(result.text)
            if parsed.edits or any(error.startswith(BROKEN_BLOCK) for error in parsed.errors):
                # A tool-calling model that wrote edit blocks as text instead: apply them by the same safe path.
                # A broken block (no closing marker, no file name) is answered with what is wrong with it, rather
                # than taken for a final answer that made no edit.
                return await self._text_step(result)
            return self._finish(result.text)
        # Some models omit call ids; the reply and its tool results must agree on one, so give each a stable id.
        calls = [c if c.id else c.model_copy(update={"id": f"call_{self.steps}_{i}"})
                 for i, c in enumerate(result.tool_calls)]
        self.messages.append(Message(role="assistant", content=result.text or None, tool_calls=calls))
        for call in calls:
            outcome = await self._execute(call)
            content = outcome.content if outcome.ok else f"error: {outcome.content}"
            self.messages.append(Message(role="tool", tool_call_id=call.id, name=call.name, content=content))
        return None

    # ---- text protocol ----------------------------------------------------------------------------------

    async def _text_step(self, result: CallResult) -> AgentResult | None:
        parsed = text_protocol.parse_reply(result.text)
        self.messages.append(Message(role="assistant", content=result.text))
        if not parsed.actions and not parsed.errors:
            return self._finish(parsed.prose or result.text)
        feedback: list[str] = []
        failed = False
        for index, action in enumerate(parsed.actions):
            outcome = await self._execute(text_protocol.to_tool_call(action, f"text_{self.steps}_{index}"))
            failed = failed or not outcome.ok
            verdict = "applied" if outcome.ok else "FAILED"
            feedback.append(f"[{text_protocol.describe(action)}] {verdict}\n{outcome.content}")
        for error in parsed.errors:
            failed = True
            self.write_failures.append(error)
            feedback.append(f"[problem] {error}")
        reads = any(isinstance(a, text_protocol.ReadRequest) for a in parsed.actions)
        if not failed and (parsed.done or not reads):
            return self._finish(parsed.prose or self._edit_summary())
        next_step = "Fix the failed blocks and continue, or write DONE when the task is complete."
        self.messages.append(Message(role="user", content="Results of your reply:\n\n" + "\n\n".join(feedback)
                                     + f"\n\n{next_step}"))
        return None

    def _edit_summary(self) -> str:
        return "Changed " + ", ".join(self.edits) + "." if self.edits else ""

    # ---- endings ----------------------------------------------------------------------------------------

    def _finish(self, text: str) -> AgentResult:
        if self.task.expected_output.format == "edits" and not self.edits:
            return self._result("failed", text, f"the model produced no usable edit: {self._no_edit_reason(text)}")
        return self._result("done", text, "")

    def _no_edit_reason(self, text: str) -> str:
        if self.write_failures:
            return (f"{len(self.write_failures)} edit attempt(s) failed; the last one: "
                    f"{truncate_middle(self.write_failures[-1], 600)}")
        answer = " ".join(text.split())
        quoted = f" Its answer began: {answer[:_ANSWER_EXCERPT_CHARS]!r}" if answer else " Its answer was empty."
        if self.supports_tools:
            return f"it finished without calling any edit tool.{quoted}"
        return f"its reply contained no edit block (path, <<<<<<< SEARCH, =======, >>>>>>> REPLACE).{quoted}"

    def _result(self, status: Literal["done", "failed"], text: str, reason: str) -> AgentResult:
        return AgentResult(
            status=status, text=text.strip(), reason=reason, steps=self.steps, edits=list(self.edits),
            tool_calls=self.tool_calls, cost_usd=self.cost_usd, usage=self.usage,
        )


async def run_agent(
    gateway: CompletionGateway,
    *,
    task: TaskSpec,
    alias: str,
    agent: AgentConfig,
    system_prompt: str,
    context: str,
    dependency_outputs: dict[str, str],
    toolbox: ToolBox,
    limits: AgentLimits,
    supports_tools: bool,
    run_id: str | None = None,
    extra_note: str | None = None,
    agent_name: str | None = None,
    protocol_prompt: str | None = None,
    images: list[ImagePart] | None = None,
) -> AgentResult:
    """Run one subtask's tool loop on model `alias` and report how it ended.

    `context` is the retrieved repository context; `dependency_outputs` maps a finished dependency's id to its
    output; `extra_note` adds a note such as the validation failure of a fix round. Without tool calling
    (`supports_tools` False) the model follows the text protocol (`protocol_prompt`, default the shipped
    prompts/tool_protocol.md). `agent_name` labels the calls for the ledger. Gateway errors propagate.
    """
    if not supports_tools and protocol_prompt is None:
        from aetherflow.prompts import load_prompt

        protocol_prompt = load_prompt(PROTOCOL_PROMPT)
    loop = _AgentLoop(gateway, task, alias, agent, toolbox, limits, supports_tools, run_id, agent_name)
    tool_names = [spec.name for spec in toolbox.specs()]
    task_text = render_task(task, dependency_outputs, extra_note, tool_names=tool_names, supports_tools=supports_tools)
    loop.messages = initial_messages(
        system_prompt=system_prompt, protocol=None if supports_tools else protocol_prompt, context=context,
        task_text=task_text, images=images,
    )
    return await loop.run()
