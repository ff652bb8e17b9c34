"""Adversarial item 14: a hung stream, a truncated tool call, an invalid diff, a 50 MB reply.

Each one goes through the real pipeline (planner, router, scheduler, agent, gateway over LiteLLM) and must end in
bounded time, by the product's own timeouts and limits (a generous pytest-level guard turns a hang into a failure
rather than a blocked suite), with nothing applied, the user's tree byte-identical, and a clear error on the
subtask. The 50 MB replies come from a hostile provider that streams them in realistic pieces and counts what it
managed to send, so the test proves the product stopped reading, not merely that it survived.
"""

from __future__ import annotations

import asyncio
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from adversarial_support import assert_untouched, snapshot
from orchestrator.pipeline_support import plan_json, services_for, task

from aetherflow.errors import AetherError, RunInterrupted
from aetherflow.llm.transport import MAX_REPLY_CHARS
from aetherflow.orchestrator.pipeline import Pipeline, RunResult
from aetherflow.orchestrator.runstate import RunStore
from aetherflow.testing.script import Fault, RecordedRequest, Reply, ToolCallSpec
from aetherflow.testing.server import ScriptedServer
from aetherflow.testing.settings import scripted_environ, scripted_settings
from aetherflow.testing.wire import sse_event
from aetherflow.workspace.changeset import ChangeSet

GUARD_S = 60.0  # far above every product limit used here: reaching it means something hung
FIFTY_MB = 50 * 1024 * 1024
NEW_FILE = "app/audit.py"
SERVER_DOC = '"""A minimal WSGI application exposing login, logout and the current user as JSON."""'
Script = Callable[[RecordedRequest], Reply | Fault]


# ---- a scripted run -----------------------------------------------------------------------------------------


def _one_task_plan(task_type: str = "module_generation", fallback: list[str] | None = None) -> dict[str, Any]:
    spec = task("x", "MARK-X: add an audit helper to the app", task_type=task_type)
    spec["fallback_strategy"] = fallback or ["fail"]
    return plan_json([spec])


def _team(agent: Script, plan: dict[str, Any]) -> Script:
    """Planner and summary answer normally; every request of the subtask goes to `agent`."""

    def script(req: RecordedRequest) -> Reply | Fault:
        if req.body.get("response_format"):
            return Reply(json=plan)
        messages = req.body.get("messages", [])
        if messages and "Summarise" in str(messages[0].get("content")):
            return Reply(text="Scripted summary.")
        return agent(req)

    return script


async def _run(pipeline: Pipeline) -> tuple[RunResult | None, AetherError | None, float]:
    """Run one request under the guard; (result, the error that stopped it, seconds taken)."""
    started = time.monotonic()
    try:
        result = await asyncio.wait_for(pipeline.run("add an audit helper to the app"), GUARD_S)
        return result, None, time.monotonic() - started
    except AetherError as exc:
        return None, exc, time.monotonic() - started
    finally:
        await pipeline.services.gateway.aclose()


def _run_id(repo: Path) -> str:
    [run_id] = [p.name for p in RunStore(repo).root.iterdir()]
    return run_id


def _subtask_error(repo: Path) -> str:
    """The saved error of the plan's only subtask, from the run's state.json."""
    state = RunStore(repo).load(_run_id(repo))
    assert state.status == "failed", state.status
    outcome = state.outcomes["x"]
    assert outcome["status"] == "failed"
    return str(outcome["error"])


def _agent_requests(server: ScriptedServer) -> list[RecordedRequest]:
    return [r for r in server.completion_requests() if "MARK-X:" in r.message_text()]


async def _warm_up(server: ScriptedServer) -> None:
    """One small call through a throwaway gateway, so the modules LiteLLM imports on its first request are loaded
    before a test measures time or memory: that one-off cost is not what it is about."""
    from aetherflow.events import EventBus
    from aetherflow.llm.gateway import Gateway
    from aetherflow.llm.types import CallRequest, Message

    server.enqueue(Reply(text="ready"))
    gateway = Gateway(scripted_settings(server), EventBus(), environ=scripted_environ())
    try:
        await gateway.complete(CallRequest(alias="strong", messages=[Message(role="user", content="warm up")]))
    finally:
        await gateway.aclose()


# ---- hung stream --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stall", ["mid_stream", "before_headers"])
async def test_a_hung_stream_ends_by_the_gateway_timeout_with_nothing_applied(
    demo_repo: Path, home: Path, scripted_server: ScriptedServer, stall: str
) -> None:
    """A provider that stops sending (after the first words, or before any header) costs each attempt at most
    gateway.timeout_s; retries and the stronger model are bounded too, and the subtask fails saying so."""
    def hang(req: RecordedRequest) -> Reply | Fault:
        if stall == "mid_stream":
            return Reply(text="I will now write the helper, step by step", tokens_per_s=0.001)
        return Fault(hang=True)

    scripted_server.script = _team(hang, _one_task_plan(fallback=["next_agent", "fail"]))
    before = snapshot(demo_repo, [home])
    pipeline = Pipeline(services_for(demo_repo, scripted_server, gateway={"timeout_s": 1.0, "max_retries": 1}))
    await _warm_up(scripted_server)  # LiteLLM's first request loads modules: not a second the planner should lose

    result, error, took = await _run(pipeline)

    assert result is None and isinstance(error, RunInterrupted)
    assert "aether run --resume" in error.message
    # 2 models x (1 + max_retries) attempts of 1 s each, plus planning.
    assert took < 30, f"took {took:.1f} s"
    # 1 + max_retries attempts per model, at most: on a loaded machine an attempt may time out before it is sent.
    models = [r.body["model"] for r in _agent_requests(scripted_server)]
    assert set(models) == {"fast", "strong"} and models.count("fast") <= 2 and models.count("strong") <= 2, models
    assert "no complete reply within 1 s (gateway.timeout_s" in _subtask_error(demo_repo)
    assert not (demo_repo / NEW_FILE).exists()
    assert_untouched(before, demo_repo, [home])


# ---- truncated tool call ------------------------------------------------------------------------------------


async def test_a_tool_call_cut_off_mid_stream_is_retried_then_fails_clearly(
    demo_repo: Path, home: Path, scripted_server: ScriptedServer
) -> None:
    """The connection closes in the middle of a tool call's arguments: no half call is ever run, the attempts are
    bounded by max_retries, and the error says the reply broke off rather than blaming an HTTP status."""
    call = ToolCallSpec(name="create_file", arguments={"path": NEW_FILE, "content": "def audit(event):\n    pass\n"})
    scripted_server.script = _team(lambda req: Reply(tool_calls=[call], truncate_after_chunks=4), _one_task_plan())
    before = snapshot(demo_repo, [home])
    pipeline = Pipeline(services_for(demo_repo, scripted_server))

    result, error, took = await _run(pipeline)

    assert result is None and isinstance(error, RunInterrupted) and took < GUARD_S
    assert len(_agent_requests(scripted_server)) == 1 + pipeline.services.settings.gateway.max_retries
    message = _subtask_error(demo_repo)
    assert "broke off" in message and "HTTP 500" not in message, message
    assert not [e for e in pipeline.services.ledger.query("SELECT 1 FROM calls WHERE status = 'ok' AND task_id = 'x'")]
    assert_untouched(before, demo_repo, [home])


async def test_tool_arguments_cut_at_the_output_limit_are_refused_and_never_run(
    demo_repo: Path, home: Path, scripted_server: ScriptedServer
) -> None:
    """A complete reply (finish_reason "length") whose create_file arguments are cut JSON: the ToolBox refuses it
    with the parse error, the model's repeats are stopped, and no file is created."""
    cut = ToolCallSpec(name="create_file", arguments='{"path": "app/audit.py", "content": "def audit(event):\\n  ')
    scripted_server.script = _team(lambda req: Reply(tool_calls=[cut], finish_reason="length"), _one_task_plan())
    before = snapshot(demo_repo, [home])
    pipeline = Pipeline(services_for(demo_repo, scripted_server))

    result, error, _ = await _run(pipeline)

    assert result is None and isinstance(error, RunInterrupted)
    message = _subtask_error(demo_repo)
    assert "invalid arguments for create_file" in message and "Unterminated string" in message, message
    assert "repeated the same action 3 times" in message
    tool_results = [m["content"] for r in _agent_requests(scripted_server) for m in r.body["messages"]
                    if m.get("role") == "tool"]
    assert tool_results and all(t.startswith("error: invalid arguments for create_file") for t in tool_results)
    assert_untouched(before, demo_repo, [home])


# ---- invalid edits ------------------------------------------------------------------------------------------

MISSING_SEARCH = {"path": "app/server.py", "search": "def this_function_does_not_exist():", "replace": "x = 1"}
MISSING_FILE = {"path": "app/nowhere.py", "search": "import os", "replace": "import sys"}
FIRST = {"path": "app/server.py", "search": SERVER_DOC, "replace": '"""A WSGI application."""'}
OVERLAPPING = {"path": "app/server.py", "search": SERVER_DOC + "\n\nimport json",
               "replace": '"""JSON WSGI app."""\n\nimport json'}

INVALID_EDITS: dict[str, tuple[list[list[dict[str, str]]], list[str]]] = {
    # name: (the edit_file calls of the first reply and of every later one, words the subtask's error must hold)
    "search_text_not_in_the_file": ([[MISSING_SEARCH]], ["app/server.py", "not found"]),
    "file_that_does_not_exist": ([[MISSING_FILE]], ["There is no file 'app/nowhere.py'", "create_file"]),
    # The first edit applied; the second, written against the text the first replaced, cannot. The model insists,
    # is stopped, and the half that applied is taken back.
    "overlapping_edits": ([[FIRST, OVERLAPPING], [OVERLAPPING]],
                          ["repeated the same action 3 times", "changes to app/server.py were taken back"]),
}


def _edit_agent(replies: list[list[dict[str, str]]]) -> Callable[[RecordedRequest], Reply]:
    served = [0]

    def agent(req: RecordedRequest) -> Reply:
        edits = replies[min(served[0], len(replies) - 1)]
        served[0] += 1
        return Reply(tool_calls=[ToolCallSpec(name="edit_file", arguments=e) for e in edits])

    return agent


@pytest.mark.parametrize("case", sorted(INVALID_EDITS))
async def test_an_invalid_edit_fails_the_subtask_and_leaves_no_trace(
    demo_repo: Path, home: Path, scripted_server: ScriptedServer, case: str
) -> None:
    """Search text that is not there, a file that does not exist, or a second edit overlapping the first: the
    subtask fails with the reason, and not even the half that applied reaches the change set."""
    replies, words = INVALID_EDITS[case]
    scripted_server.script = _team(_edit_agent(replies), _one_task_plan("local_refactor"))
    before = snapshot(demo_repo, [home])
    pipeline = Pipeline(services_for(demo_repo, scripted_server))

    result, error, _ = await _run(pipeline)

    assert result is None and isinstance(error, RunInterrupted), result and result.message
    assert "no usable edit" in error.message
    message = _subtask_error(demo_repo)
    assert all(word in message for word in words), message
    told = [m["content"] for r in _agent_requests(scripted_server) for m in r.body["messages"]
            if m.get("role") == "tool"]
    assert any(t.startswith("error:") for t in told), "the model was never told its edit failed"
    saved = (RunStore(demo_repo).folder(_run_id(demo_repo)) / "changeset.json").read_text()
    assert ChangeSet.model_validate_json(saved).files == [], "part of the failed subtask's work reached the change set"
    assert_untouched(before, demo_repo, [home])


async def test_a_malformed_edit_block_in_text_is_reported_not_ignored(
    demo_repo: Path, home: Path, scripted_server: ScriptedServer
) -> None:
    """An edit block without its closing marker, written as text by a tool-calling model: nothing is applied and the
    subtask's error names the broken block, not merely 'no edit tool was called'."""
    broken = f"app/server.py\n<<<<<<< SEARCH\n{SERVER_DOC}\n=======\n\"\"\"A WSGI application.\"\"\"\n"
    scripted_server.script = _team(lambda req: Reply(text=broken), _one_task_plan("local_refactor"))
    before = snapshot(demo_repo, [home])
    pipeline = Pipeline(services_for(demo_repo, scripted_server))

    result, error, _ = await _run(pipeline)

    assert result is None and isinstance(error, RunInterrupted)
    message = _subtask_error(demo_repo)
    assert "REPLACE" in message, message
    assert_untouched(before, demo_repo, [home])


# ---- a 50 MB reply ------------------------------------------------------------------------------------------

PIECE_CHARS = 16 * 1024


class FloodServer:
    """A hostile OpenAI-compatible provider: every chat completion streams a reply of `size` characters, as text or
    as the arguments of one create_file call, in PIECE_CHARS pieces made on the fly (the server itself never holds
    the reply). `sent` counts the body bytes the client accepted before it hung up."""

    def __init__(self, size: int, kind: str) -> None:
        self.size, self.kind = size, kind
        self.sent = 0
        self.requests = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the body ends when the connection closes

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
                """Quiet."""

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with owner._lock:
                    owner.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                try:
                    for event in owner.events():
                        self.wfile.write(event)
                        with owner._lock:
                            owner.sent += len(event)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading: what the product must do

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> FloodServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def events(self) -> Iterator[bytes]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return sse_event({"id": "flood", "object": "chat.completion.chunk", "created": 0, "model": "fast",
                              "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

        yield chunk({"role": "assistant", "content": ""})
        if self.kind == "tool_call":
            head = {"index": 0, "id": "call_flood", "type": "function",
                    "function": {"name": "create_file", "arguments": '{"path": "app/big.py", "content": "'}}
            yield chunk({"tool_calls": [head]})
        for number in range(self.size // PIECE_CHARS):
            # Numbered, so no two pieces are alike: LiteLLM gives up on a stream repeating one chunk on its own.
            piece = f"{number:09d} ".ljust(PIECE_CHARS, "x")
            if self.kind == "tool_call":
                yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
            else:
                yield chunk({"content": piece})
        if self.kind == "tool_call":
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"}'}}]})
        yield chunk({}, "tool_calls" if self.kind == "tool_call" else "stop")
        yield sse_event("[DONE]")


@pytest.mark.parametrize("kind", ["text", "tool_call"])
async def test_a_50_mb_reply_is_cut_off_at_the_size_limit_with_memory_to_match(
    demo_repo: Path, home: Path, scripted_server: ScriptedServer, kind: str
) -> None:
    """50 MB of text, or a create_file whose content is 50 MB: the gateway stops reading at MAX_REPLY_CHARS (the
    provider could not send most of it), does not retry a reply that will only be as large again, keeps memory
    bounded, writes nothing, and the subtask's error names the limit."""
    scripted_server.script = _team(lambda req: Fault(status=500, message="unexpected"), _one_task_plan())
    before = snapshot(demo_repo, [home])
    with FloodServer(FIFTY_MB, kind) as flood:
        # "fast" (the coder's model) is the hostile provider; planning and the summary stay on the scripted server.
        services = services_for(demo_repo, scripted_server, models={"fast": {"api_base": flood.base_url}})
        pipeline = Pipeline(services)
        await _warm_up(scripted_server)
        tracemalloc.start()
        try:
            result, error, took = await _run(pipeline)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert result is None and isinstance(error, RunInterrupted) and took < GUARD_S
    assert flood.requests == 1, f"a reply over the limit was retried: {_subtask_error(demo_repo)}"
    assert flood.sent < FIFTY_MB // 2, f"the product read {flood.sent} bytes of the 50 MB reply"
    # Held at once: a few copies of what was read up to the limit (LiteLLM keeps its own), never the 50 MB.
    assert peak < 6 * MAX_REPLY_CHARS, f"peak traced memory {peak / 1e6:.0f} MB"
    message = _subtask_error(demo_repo)
    assert f"{MAX_REPLY_CHARS:,}" in message and "characters" in message, message
    assert not (demo_repo / "app" / "big.py").exists()
    assert_untouched(before, demo_repo, [home])


@pytest.mark.parametrize("kind", ["text", "tool_call"])
async def test_the_light_transport_of_the_pre_commit_hook_stops_a_50_mb_reply_at_the_same_limit(kind: str) -> None:
    """The plain-httpx transport short-lived callers use (the pre-commit hook) refuses the same flood at the same
    limit: one request, most of the 50 MB never read, and an error that names the limit."""
    from aetherflow.errors import ProviderError
    from aetherflow.events import EventBus
    from aetherflow.llm.gateway import Gateway
    from aetherflow.llm.types import CallRequest, Message

    with FloodServer(FIFTY_MB, kind) as flood:
        gateway = Gateway(scripted_settings(flood.base_url), EventBus(), environ=scripted_environ(),
                          light_transport=True)
        try:
            with pytest.raises(ProviderError) as refused:
                await asyncio.wait_for(gateway.complete(
                    CallRequest(alias="fast", messages=[Message(role="user", content="review this diff")])), GUARD_S)
        finally:
            await gateway.aclose()

    assert flood.requests == 1 and flood.sent < FIFTY_MB // 2, (flood.requests, flood.sent)
    assert f"{MAX_REPLY_CHARS:,} characters" in refused.value.message
