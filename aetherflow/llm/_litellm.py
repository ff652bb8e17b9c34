"""The one place that imports LiteLLM, after setting the variables that keep it offline and quiet.

`LITELLM_LOCAL_MODEL_COST_MAP` makes it use its bundled price table instead of fetching one over the network;
`LITELLM_MODE=PRODUCTION` stops it loading a stray `.env` from a parent folder (STACK.md).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType


def bundled_tiktoken_dir() -> Path | None:
    """LiteLLM's folder of tiktoken encodings (cl100k_base, o200k_base), found without importing LiteLLM."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
    return folder if folder.is_dir() else None


def prepare_environment() -> None:
    """Set the variables LiteLLM and tiktoken read at import time. Idempotent; user settings win."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_MODE", "PRODUCTION")
    if "TIKTOKEN_CACHE_DIR" not in os.environ:
        folder = bundled_tiktoken_dir()
        if folder is not None:
            os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)


def import_litellm() -> ModuleType:
    """Import and return `litellm` with the environment prepared (about 2 s the first time)."""
    prepare_environment()
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm
