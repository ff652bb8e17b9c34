"""The whole-file agent: one conversation in which the model is shown files in full and answers with whole files.

It serves models whose catalogue entry says `edit_format = "whole"` (by default, local models without tool
calling). Each reply is applied at once through the ToolBox (an existing file through edit_file with its whole
current content as the search text, a new one through create_file), so the safety path is the same as for every
other agent: allow-listed tools, paths confined to the worktree, protected files refused. `fix` continues the same
conversation with what the checks said, which is how a small model repairs its own file best (it sees what it
wrote and why it failed).
"""

from __future__ import annotations

import json

from aetherflow.config.models import AgentConfig
from aetherflow.llm.types import CallRequest, CallResult, Message, ToolCall, Usage
from aetherflow.orchestrator.agent import AgentResult, CompletionGateway, add_usage
from aetherflow.orchestrator.agent_prompt import DATA_NOTICE, render_task
from aetherflow.orchestrator.plan import TaskSpec
from aetherflow.orchestrator.scope import CHARS_PER_TOKEN, ScopeFile
from aetherflow.orchestrator.tools import ToolBox
from aetherflow.orchestrator.whole_protocol import WholeFile, parse_whole_reply

WHOLE_PROMPT = "whole_protocol.md"
# A whole-file answer is about as long as the files it rewrites; past a generous multiple of that, plus room for
# new code, a small model is looping ("9999...") and further tokens only cost time.
REPLY_FLOOR_TOKENS = 1024
REPLY_PER_FILE_TOKEN = 3
FIX_TEXT = ("Your files do not pass the project's checks yet. This is what they report:\n\n{output}\n\n"
            "Reply with the complete corrected content of every file you change, each after its path.")


def files_text(scope: list[ScopeFile]) -> str:
    """The files in scope as the model reads them: path, a reference mark for read-only ones, the content.

    Reference files come first and the files to write last: a small model that copies the listing back (it does)
    then stops after its own files instead of copying a test file after them."""
    parts = []
    for item in sorted(scope, key=lambda f: f.editable):
        mark = "  (reference: shows how the work is judged; do not write it)" if not item.editable else ""
        fence = "````" if "```" in item.text else "```"
        parts.append(f"{item.path}{mark}\n{fence}\n{item.text.rstrip()}\n{fence}")
    return "\n\n".join(parts)


class WholeFileAgent:
    """One subtask's whole-file conversation on one model."""

    def __init__(
        self, gateway: CompletionGateway, *, task: TaskSpec, alias: str, agent: AgentConfig, agent_name: str,
        system_prompt: str, protocol_prompt: str, scope: list[ScopeFile], default_path: str | None,
        toolbox: ToolBox, dependency_outputs: dict[str, str], note: str | None, run_id: str | None,
    ) -> None:
        self.gateway, self.task, self.alias, self.agent = gateway, task, alias, agent
        self.agent_name, self.toolbox, self.run_id = agent_name, toolbox, run_id
        self.scope = {item.path: item for item in scope}
        self.default_path = default_path
        task_text = render_task(task, dependency_outputs, note, tool_names=[], supports_tools=False, whole=True)
        editable = [item.path for item in scope if item.editable]
        if len(editable) == 1:
            # Small models copy back every file they are shown unless told which one is theirs.
            task_text += f"\n\nWrite only {editable[0]}: the other files are shown for reference."
        files = files_text(scope) or "(no file of the repository is shown: create the files the task needs)"
        self.messages = [
            Message(role="system", content=f"{system_prompt.strip()}\n\n{protocol_prompt.strip()}", cache_prefix=True),
            Message(role="user", content=f"The repository's files for your task. {DATA_NOTICE}\n\n{files}",
                    cache_prefix=True),
            Message(role="user", content=task_text),
        ]
        editable_chars = sum(len(item.text) for item in scope if item.editable)
        self.max_tokens = min(agent.max_output_tokens,
                              REPLY_FLOOR_TOKENS + int(REPLY_PER_FILE_TOKEN * editable_chars / CHARS_PER_TOKEN))
        self.edits: list[str] = []
        self.usage = Usage()
        self.cost_usd = 0.0
        self.steps = 0

    async def first(self, temperature: float | None) -> AgentResult:
        """The first answer, at `temperature` (None: the agent's own)."""
        return await self._round(temperature)

    async def fix(self, output: str, temperature: float | None = None) -> AgentResult:
        """Another answer in the same conversation, told what the checks reported."""
        self.messages.append(Message(role="user", content=FIX_TEXT.format(output=output.strip())))
        return await self._round(temperature)

    async def _round(self, temperature: float | None) -> AgentResult:
        self.steps += 1
        result = await self._call(temperature)
        self.messages.append(Message(role="assistant", content=result.text))
        reply = parse_whole_reply(result.text, self.default_path)
        changed: list[str] = []
        problems = list(reply.errors)
        for item in reply.files:
            outcome = await self._write(item)
            if outcome is None:
                continue
            ok, path_or_problem = outcome
            (changed if ok else problems).append(path_or_problem)
        self.edits += [p for p in changed if p not in self.edits]
        if changed:
            return self._result("done", reply.prose or f"Changed {', '.join(changed)}.", "")
        why = "; ".join(problems) or "its reply held no file (a path followed by a fenced code block)"
        return self._result("failed", reply.prose, f"the model produced no usable edit: {why}")

    async def _call(self, temperature: float | None) -> CallResult:
        request = CallRequest(
            messages=list(self.messages), alias=self.alias, agent=self.agent_name,
            temperature=self.agent.temperature if temperature is None else temperature,
            max_tokens=self.max_tokens, stream=True, run_id=self.run_id, task_id=self.task.id,
            # A resample at another temperature must reach the model, not the response cache.
            use_cache=temperature is None,
        )
        result = await self.gateway.complete(request)
        self.usage = add_usage(self.usage, result.usage)
        self.cost_usd += result.cost_usd
        return result

    async def _write(self, item: WholeFile) -> tuple[bool, str] | None:
        """(True, path) when written, (False, why) when refused, None when the content is unchanged."""
        known = self.scope.get(item.path)
        if known is not None and not known.editable:
            return False, f"{item.path} is a reference file (tests): change the code so that it passes, not the file"
        workspace = self.toolbox.workspace
        if workspace.exists(item.path):
            current = workspace.read_text(item.path)
            if current == item.content:
                return None
            call = ToolCall(id=f"whole_{self.steps}", name="edit_file",
                            arguments=json.dumps({"path": item.path, "search": current, "replace": item.content}))
        else:
            call = ToolCall(id=f"whole_{self.steps}", name="create_file",
                            arguments=json.dumps({"path": item.path, "content": item.content}))
        outcome = await self.toolbox.execute(call)
        if outcome.ok:
            return True, outcome.changed_path or item.path
        return False, f"{item.path}: {outcome.content}"

    def _result(self, status: str, text: str, reason: str) -> AgentResult:
        return AgentResult(
            status="done" if status == "done" else "failed", text=text.strip(), reason=reason, steps=self.steps,
            edits=list(self.edits), tool_calls=0, cost_usd=self.cost_usd, usage=self.usage,
        )
