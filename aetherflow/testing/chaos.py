"""The chaos mode of the scripted server: seeded, random, plausible answers to whatever the product asks.

    script = ChaosScript(seed=7, world=ChaosWorld(files={"app/auth.py": text}, outside=["/tmp/x/home/.bashrc"]))
    server.script = script          # every chat request is now answered by the generator
    ... run the product ...
    script.tally.kinds               # Counter of what was sent: plan_valid, tool_hostile_write, fault_429, ...
    script.tally.billed              # the complete replies, with the tokens each one reported

A reply depends on the request: a JSON-mode request (a `response_format`, or the schema given as instructions) gets
plans (valid, semantically broken, schema-breaking, invalid JSON), an agent offered tools gets tool calls (real edits,
hostile paths, unknown tools, wrong argument types, megabytes of content), an agent without tools gets SEARCH/REPLACE
text (valid and mangled), and anything may get an error (429 with Retry-After 0, 500, 400, a malformed body, a cut
stream), an empty reply or a short delay.

Reproducible: each request belongs to a lane (the planner, the summary, or one subtask by its id) and every lane
draws from its own `random.Random(f"{seed}/{lane}")`. Requests within a lane come one after another, so the same
seed gives the same replies for the same requests, however the parallel subtasks interleave.
"""

from __future__ import annotations

import random
import re
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from aetherflow.testing.chaos_replies import ChaosWorld, ReplyMaker
from aetherflow.testing.script import Action, Fault, RecordedRequest, Reply

__all__ = ["Billed", "ChaosScript", "ChaosTally", "ChaosWorld", "read_request"]

JSON_INSTRUCTIONS = "Reply with one JSON object only"
REPAIR_PREFIX = "Your reply does not match the required JSON schema"
_TASK_HEADER = re.compile(r"# Your task \(([^,\n]{1,60}),")
_DEFAULT_MAX_TOKENS = 4096


@dataclass(frozen=True)
class Billed:
    """A complete reply the client was sent: what a provider would bill, at the model's price."""

    model: str
    prompt_tokens: int
    completion_tokens: int
    repair: bool


@dataclass
class ChaosTally:
    """What the generator answered: a count per kind of reply, and every billable reply."""

    kinds: Counter[str] = field(default_factory=Counter)
    billed: list[Billed] = field(default_factory=list)

    def cost_usd(self, prices: dict[str, dict[str, float]]) -> float:
        """What the billed replies cost at `prices` (model name -> {"input", "output"} USD per 1M tokens)."""
        return sum((b.prompt_tokens * prices[b.model]["input"] + b.completion_tokens * prices[b.model]["output"])
                   / 1_000_000 for b in self.billed)


@dataclass(frozen=True)
class _Ask:
    """The request, as the generator reads it."""

    request: RecordedRequest
    lane: str
    json_mode: bool
    tools: list[str]
    repair: bool


def _messages(request: RecordedRequest) -> list[dict[str, Any]]:
    messages = request.body.get("messages")
    return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return content if isinstance(content, str) else ""


def read_request(request: RecordedRequest) -> _Ask:
    """Classify a chat request: its lane, JSON mode, the tools offered, and whether it is a structured repair."""
    messages = _messages(request)
    system = _text(messages[0]) if messages and messages[0].get("role") == "system" else ""
    json_mode = bool(request.body.get("response_format")) or JSON_INSTRUCTIONS in system
    tools = [t["function"].get("name", "") for t in request.body.get("tools") or []
             if isinstance(t, dict) and isinstance(t.get("function"), dict)]
    last_user = next((_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
    header = next((found for m in messages if m.get("role") == "user"
                   for found in [_TASK_HEADER.search(_text(m))] if found), None)
    if json_mode:
        lane = "plan"
    elif system.startswith("Summarise"):
        lane = "summary"
    else:
        lane = f"task:{header.group(1)}" if header else "other"
    return _Ask(request, lane, json_mode, tools, last_user.startswith(REPAIR_PREFIX))


class ChaosScript:
    """A ScriptedServer script answering every request at random, reproducibly per seed (see the module doc).

    `fault_rate` is the chance that a reply is an error; `huge_chars` bounds the megabyte-sized contents.
    Thread-safe: the server calls it from one thread per connection.
    """

    def __init__(self, seed: int, world: ChaosWorld, *, fault_rate: float = 0.12, huge_chars: int = 3_000_000) -> None:
        self.seed = seed
        self.fault_rate = fault_rate
        self.tally = ChaosTally()
        self._replies = ReplyMaker(world, huge_chars)
        self._lanes: dict[str, random.Random] = {}
        self._lock = threading.Lock()

    def __call__(self, request: RecordedRequest) -> Action:
        ask = read_request(request)
        with self._lock:
            rng = self._lanes.setdefault(ask.lane, random.Random(f"{self.seed}/{ask.lane}"))
            kind, action = self._choose(rng, ask)
            self.tally.kinds[kind] += 1
            if isinstance(action, Reply) and action.truncate_after_chunks is None:
                action = self._billed(ask, action)
        return action

    # ---- choosing -----------------------------------------------------------------------------------------

    def _choose(self, rng: random.Random, ask: _Ask) -> tuple[str, Action]:
        if rng.random() < self.fault_rate:
            return self._fault(rng)
        if ask.json_mode:
            kind, reply = self._replies.plan(rng)
        elif ask.lane == "summary":
            kind, reply = rng.choice([("summary_text", Reply(text="The run changed a few files.")),
                                      ("empty", Reply(text=""))])
        elif ask.tools:
            kind, reply = self._replies.tool_reply(rng, ask.tools)
        else:
            kind, reply = self._replies.text_reply(rng)
        return kind, self._delayed(rng, reply)

    def _fault(self, rng: random.Random) -> tuple[str, Action]:
        pick = rng.randrange(6)
        if pick == 0:
            return "fault_429", Fault(status=429, retry_after=0)
        if pick == 1:
            return "fault_500", Fault(status=rng.choice([500, 502, 503]))
        if pick == 2:
            return "fault_400", Fault(status=400, message="scripted chaos: invalid request")
        if pick == 3:
            return "fault_malformed", Fault(malformed=True)
        # A stream cut after a few chunks: no finish reason, no usage, the connection closed mid-body.
        return "fault_truncated", Reply(text="partial answer " * 5, truncate_after_chunks=rng.randrange(4))

    def _delayed(self, rng: random.Random, reply: Reply) -> Reply:
        # Mostly a small delay; sometimes a short hang, well below any sane gateway timeout.
        wait = rng.uniform(0.15, 0.4) if rng.random() < 0.03 else rng.uniform(0.0, 0.01)
        size = len(reply.content) + sum(len(call.arguments_text()) for call in reply.tool_calls)
        # Word by word (and 8-character argument pieces) only for small replies: each chunk costs the client
        # about a millisecond, so a megabyte in small pieces would measure the wire instead of the product.
        # Big replies go in at most about 200 chunks, whatever size was drawn.
        chunk = None if rng.random() < 0.3 and size < 2000 else max(rng.choice([64, 1024, 65536]), size // 200)
        return _replace(reply, ttft_s=wait, chunk_chars=reply.chunk_chars or chunk)

    def _billed(self, ask: _Ask, reply: Reply) -> Reply:
        """Plausible usage for a complete reply (never more output than max_tokens), recorded as billed."""
        produced = len(reply.content) + sum(len(c.arguments_text()) + len(c.name) for c in reply.tool_calls)
        limit = ask.request.body.get("max_tokens")
        limit = limit if isinstance(limit, int) and limit > 0 else _DEFAULT_MAX_TOKENS
        prompt = max(1, len(ask.request.message_text()) // 4)
        completion = min(max(1, produced // 4), limit)
        model = str(ask.request.body.get("model", ""))
        self.tally.billed.append(Billed(model, prompt, completion, ask.repair))
        return _replace(reply, prompt_tokens=prompt, completion_tokens=completion)


def _replace(reply: Reply, **changes: Any) -> Reply:
    """A copy of a frozen Reply with some fields changed."""
    return replace(reply, **changes)
