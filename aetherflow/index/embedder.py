"""Dense embeddings with fastembed, loaded offline from `index.model_path` when it is set.

fastembed pads every batch to its longest text, so the order of texts decides the cost: the embedder sorts
texts by length before batching and puts the vectors back in the caller's order (measured on function chunks:
16 chunks/s in file order, 52 chunks/s sorted).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from aetherflow import paths
from aetherflow.config.models import IndexConfig
from aetherflow.errors import ConfigError, RepoIndexError

if TYPE_CHECKING:
    import numpy as np
    from fastembed import TextEmbedding

BATCH_SIZE = 8
"""Texts per model call. onnxruntime's peak memory grows with the batch (one batch of 256-token texts: 260 MB
at 1, 390 MB at 8, 520 MB at 16, 1.4 GB at 32) and with the variety of shapes it has seen: indexing Django's
package peaked at 1.15 GB with 16, while CPU time per text differs by about 5% between 8 and 16 on 2 cores."""


class Embedder(Protocol):
    """Turns texts into dense vectors. `model_name` and `dim` are recorded in the index's metadata."""

    model_name: str

    @property
    def dim(self) -> int: ...

    def embed_documents(
        self, texts: Sequence[str], on_batch: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """One row per text, in the order given; `on_batch(n)` after every `n` texts embedded."""
        ...

    def embed_query(self, text: str) -> list[float]:
        """The vector of a search query."""
        ...


class FastEmbedder:
    """fastembed's TextEmbedding, loaded on first use."""

    def __init__(self, config: IndexConfig, batch_size: int = BATCH_SIZE, threads: int | None = None) -> None:
        self.model_name = config.embedding_model
        self.model_path = config.model_path
        self.batch_size = batch_size
        self.threads = threads
        self._model: TextEmbedding | None = None
        self._dim: int | None = None

    def _load(self) -> TextEmbedding:
        if self._model is None:
            self._model = load_model(self.model_name, self.model_path, self.threads)
        return self._model

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = len(self.embed_query("dimension probe"))
        return self._dim

    def embed_documents(
        self, texts: Sequence[str], on_batch: Callable[[int], None] | None = None
    ) -> np.ndarray:
        import numpy as np

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = self._load().embed([texts[i] for i in order], batch_size=self.batch_size)
        for done, (index, vector) in enumerate(zip(order, vectors, strict=True), start=1):
            out[index] = vector
            if on_batch is not None and (done % self.batch_size == 0 or done == len(order)):
                on_batch(done % self.batch_size or self.batch_size)
        return out

    def embed_query(self, text: str) -> list[float]:
        vector = next(iter(self._load().query_embed(text)))
        return [float(x) for x in vector]


def load_model(name: str, model_path: str | None, threads: int | None = None) -> TextEmbedding:
    """Load `name` from `model_path` (offline) or through fastembed's download, with a clear error either way."""
    from fastembed import TextEmbedding

    kwargs: dict[str, object] = {"cache_dir": str(paths.user_cache_dir() / "fastembed"), "threads": threads}
    if model_path:
        folder = Path(model_path).expanduser()
        _check_model_folder(folder, name)
        kwargs["specific_model_path"] = str(folder)
    try:
        return TextEmbedding(name, **kwargs)  # type: ignore[arg-type]
    except ValueError as exc:
        if "not supported" in str(exc):
            raise ConfigError(
                f"fastembed does not know the embedding model '{name}'.",
                "Set index.embedding_model to a model `TextEmbedding.list_supported_models()` lists.",
            ) from exc
        raise _no_model(name, model_path, exc) from exc
    except (OSError, RuntimeError) as exc:
        raise _no_model(name, model_path, exc) from exc


def _check_model_folder(folder: Path, name: str) -> None:
    """fastembed needs the model file under the exact name it lists for `name`, plus the tokenizer files."""
    from fastembed import TextEmbedding

    known = {d["model"]: d for d in TextEmbedding.list_supported_models()}
    if name not in known:
        raise ConfigError(
            f"fastembed does not know the embedding model '{name}'.",
            "Set index.embedding_model to a model `TextEmbedding.list_supported_models()` lists.",
        )
    needed = [known[name]["model_file"], "tokenizer.json", "tokenizer_config.json"]
    missing = [f for f in needed if not (folder / f).is_file()]
    if missing:
        what = "is not a folder" if not folder.is_dir() else f"lacks {', '.join(missing)}"
        raise RepoIndexError(
            f"index.model_path is {folder}, which {what}.",
            f"Point index.model_path at a folder holding {', '.join(needed)} for {name}.",
        )


def _no_model(name: str, model_path: str | None, exc: BaseException) -> RepoIndexError:
    where = f"from index.model_path ({model_path})" if model_path else "from the model hub (no network?)"
    return RepoIndexError(
        f"Cannot load the embedding model {name} {where}: {exc}",
        "Download the model's ONNX folder (model file, tokenizer.json, tokenizer_config.json) and set "
        "index.model_path to it (e.g. AETHER_INDEX__MODEL_PATH=/path/to/folder), or connect to the network.",
    )
