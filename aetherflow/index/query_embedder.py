"""Query embeddings without importing fastembed, so that a cold `aether search` stays under a second.

Importing fastembed costs about half a second (it pulls in huggingface_hub and its image stack) before the
model even loads. A query is one short text, so for the models listed in `POOLING` this module runs the same
computation fastembed runs — the model's tokenizer with fastembed's truncation rule, the ONNX model,
mask-weighted mean pooling, L2 normalisation — with onnxruntime and tokenizers directly. A test checks that
both give the same vector. Any other model, or no local model folder, goes through fastembed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from aetherflow.config.models import IndexConfig
from aetherflow.index.embedder import FastEmbedder

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

# Models whose fastembed post-processing is "mean pooling, then normalise" (PooledNormalizedEmbedding).
POOLING: dict[str, Literal["mean"]] = {"sentence-transformers/all-MiniLM-L6-v2": "mean"}
MODEL_FILE = "model.onnx"


class QueryEmbedder(Protocol):
    """What search needs: one vector per query."""

    def embed_query(self, text: str) -> list[float]: ...


def query_embedder(config: IndexConfig) -> QueryEmbedder:
    """The fast direct path when the model folder and model allow it, else fastembed itself."""
    folder = Path(config.model_path).expanduser() if config.model_path else None
    if (
        folder is not None
        and config.embedding_model in POOLING
        and (folder / MODEL_FILE).is_file()
        and (folder / "tokenizer.json").is_file()
        and (folder / "tokenizer_config.json").is_file()
    ):
        return OnnxQueryEmbedder(folder)
    return FastEmbedder(config)


class OnnxQueryEmbedder:
    """Mean-pooled, normalised sentence embeddings from an ONNX model folder (loaded on first use)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._session: onnxruntime.InferenceSession | None = None
        self._tokenizer: Tokenizer | None = None
        self._inputs: set[str] = set()

    def _load(self) -> tuple[onnxruntime.InferenceSession, Tokenizer]:
        if self._session is None or self._tokenizer is None:
            import onnxruntime as ort
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
            tokenizer_config = json.loads((self.folder / "tokenizer_config.json").read_text(encoding="utf-8"))
            truncation = tokenizer.truncation or {}
            tokenizer.enable_truncation(
                max_length=_max_context(tokenizer_config),
                direction=tokenizer_config.get("truncation_side") or truncation.get("direction", "right"),
            )
            tokenizer.no_padding()
            session = ort.InferenceSession(str(self.folder / MODEL_FILE), providers=["CPUExecutionProvider"])
            self._inputs = {node.name for node in session.get_inputs()}
            self._session, self._tokenizer = session, tokenizer
        return self._session, self._tokenizer

    def embed_query(self, text: str) -> list[float]:
        import numpy as np

        session, tokenizer = self._load()
        encoded = tokenizer.encode(text)
        ids = np.array([encoded.ids], dtype=np.int64)
        mask = np.array([encoded.attention_mask], dtype=np.int64)
        feed: dict[str, Any] = {"input_ids": ids}
        if "attention_mask" in self._inputs:
            feed["attention_mask"] = mask
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = session.run(None, feed)[0]
        weights = mask[..., None].astype(np.float64)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norm = np.linalg.norm(pooled, axis=1, keepdims=True)
        return [float(x) for x in (pooled / np.clip(norm, 1e-12, None))[0].astype(np.float32)]


def _max_context(tokenizer_config: dict[str, Any]) -> int:
    """fastembed's truncation limit: the stricter of `model_max_length` and `max_length` that is a real limit."""
    limits = [
        value
        for value in (tokenizer_config.get("model_max_length"), tokenizer_config.get("max_length"))
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= sys.maxsize
    ]
    return min(limits) if limits else 512
