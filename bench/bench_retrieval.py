"""Retrieval quality of the repository index: can a function be found from the first sentence of its docstring?

Fetches a large open-source Python project (Django by default) with pip into bench/.cache, writes a copy with
every docstring removed, commits that copy to a git repository there, and indexes it with the product's
`Indexer` (chunker, dense + sparse vectors, embedded Qdrant Edge store); queries go through the product's
`Retriever`. Each query is the first sentence of a documented function's docstring; the target is that
function. Reports recall@1/5/10 and MRR@10 for hybrid (RRF), dense only, sparse only, and a plain keyword
baseline (BM25 over the lowercase words of the chunk text, no identifier splitting, no path or symbol).

    /root/venv/bin/python bench/bench_retrieval.py            # 300 queries over the whole project
    /root/venv/bin/python bench/bench_retrieval.py --modes sparse,keyword   # no embedding model needed

Dense vectors are cached under bench/.cache/embeddings.sqlite keyed by model and text hash (the embedder
handed to the indexer reads the cache first), and the index itself is updated incrementally, so only the first
run pays for embedding every chunk (about 33k chunks: an hour or more on 2 busy cores).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import re
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _corpus import CACHE, DEFAULT_PROJECT, Documented, fetch_sdist, python_files, strip_docstrings  # noqa: E402

from aetherflow.config.models import IndexConfig  # noqa: E402
from aetherflow.index.chunking import chunk_source  # noqa: E402
from aetherflow.index.indexer import Indexer  # noqa: E402
from aetherflow.index.models import Chunk  # noqa: E402
from aetherflow.index.search import Retriever  # noqa: E402
from aetherflow.index.store import EdgeStore  # noqa: E402

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_PATH = Path("/work/shared/models/all-MiniLM-L6-v2-onnx")
MODES = ("hybrid", "dense", "sparse", "keyword")
DIM = 384


@dataclass(frozen=True)
class Target:
    """One query and where its answer is."""

    query: str
    path: str
    name: str
    start_line: int
    end_line: int


def first_sentence(docstring: str) -> str:
    """The docstring's first sentence, on one line."""
    paragraph = docstring.strip().split("\n\n", 1)[0]
    text = " ".join(paragraph.split())
    match = re.search(r"(?<=[.!?])\s", text)
    return text[: match.start()] if match else text


def is_decent_query(sentence: str) -> bool:
    """A query a person could type: 5 to 40 words of prose, not markup or a doctest."""
    words = sentence.split()
    if not 5 <= len(words) <= 40 or sentence.startswith((":", ">>>", "..", "#", "(")):
        return False
    letters = sum(ch.isalpha() for ch in sentence)
    return letters >= 0.7 * len(sentence.replace(" ", ""))


def select_targets(documented: list[Documented], count: int, seed: int, under: str) -> list[Target]:
    """A fixed random sample of documented functions of the package (not its tests) with decent queries."""
    candidates: list[Target] = []
    for doc in documented:
        query = first_sentence(doc.docstring)
        if doc.path.startswith(under) and is_decent_query(query) and doc.end_line - doc.start_line >= 2:
            candidates.append(Target(query, doc.path, doc.name, doc.start_line, doc.end_line))
    repeated = Counter(t.query.lower() for t in candidates)
    unique = [t for t in candidates if repeated[t.query.lower()] == 1]
    random.Random(seed).shuffle(unique)
    return sorted(unique[:count], key=lambda t: (t.path, t.start_line))


class Located(Protocol):
    """What a result needs for scoring: a `Chunk` or a `SearchHit`."""

    path: str
    start_line: int
    end_line: int
    symbol: str | None


def is_hit(chunk: Located, target: Target) -> bool:
    """The chunk is the target's: same file, and it is the function (or a window of it), or contains it."""
    if chunk.path != target.path or chunk.end_line < target.start_line or chunk.start_line > target.end_line:
        return False
    contains = chunk.start_line <= target.start_line and chunk.end_line >= target.end_line
    return contains or chunk.symbol == target.name


# -- dense embeddings with a disk cache ----------------------------------------------------------------------

class CachedEmbedder:
    """The indexer's Embedder (and the retriever's QueryEmbedder), reading float32 vectors cached in SQLite by
    sha256(model, text) and computing only the missing ones with fastembed, shortest texts first."""

    model_name = MODEL
    dim = DIM

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=120)
        self.db.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB)")
        self._model = None
        self.computed, self.seconds = 0, 0.0

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{MODEL}\x00{text}".encode()).hexdigest()

    def embed_documents(self, texts: Sequence[str], on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        keys = [self._key(t) for t in texts]
        found = self._cached(keys)
        missing = sorted({k: t for k, t in zip(keys, texts) if k not in found}.items(), key=lambda kv: len(kv[1]))
        started = time.perf_counter()
        for start in range(0, len(missing), 512):  # committed in slices, so an interrupted run keeps its work
            batch = missing[start : start + 512]
            vectors = list(self._fastembed().embed([t for _, t in batch], batch_size=16))
            rows = [(key, np.asarray(v, dtype=np.float32).tobytes()) for (key, _), v in zip(batch, vectors)]
            with self.db:  # the write lock is held for the insert only, not while the model runs
                self.db.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?)", rows)
            found.update((key, np.frombuffer(blob, dtype=np.float32)) for key, blob in rows)
        self.computed += len(missing)
        self.seconds += time.perf_counter() - started
        if on_batch is not None and texts:
            on_batch(len(texts))
        return np.stack([found[k] for k in keys]) if keys else np.empty((0, DIM), dtype=np.float32)

    def embed_query(self, text: str) -> list[float]:
        return [float(x) for x in self.embed_documents([text])[0]]

    def _cached(self, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 900):
            batch = keys[start : start + 900]
            marks = ",".join("?" * len(batch))
            for key, blob in self.db.execute(f"SELECT key, vec FROM emb WHERE key IN ({marks})", batch):
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def _fastembed(self):
        if self._model is None:
            from fastembed import TextEmbedding

            self._model = TextEmbedding(MODEL, specific_model_path=str(MODEL_PATH))
        return self._model


class KeywordBaseline:
    """BM25 over the lowercase words (\w+) of the chunk text: what a plain keyword search gives."""

    def __init__(self, chunks: list[Chunk], k1: float = 1.2, b: float = 0.75) -> None:
        self.chunks = chunks
        self.postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self.lengths = []
        for position, chunk in enumerate(chunks):
            counts = Counter(_words(chunk.text))
            self.lengths.append(sum(counts.values()))
            for term, count in counts.items():
                self.postings[term].append((position, count))
        self.avg = sum(self.lengths) / max(len(self.lengths), 1)
        self.n, self.k1, self.b = len(chunks), k1, b

    def search(self, text: str, k: int = 10) -> list[Chunk]:
        scores: Counter[int] = Counter()
        for term in set(_words(text)):
            posting = self.postings.get(term, [])
            idf = math.log(1 + (self.n - len(posting) + 0.5) / (len(posting) + 0.5))
            for position, count in posting:
                norm = self.k1 * (1 - self.b + self.b * self.lengths[position] / self.avg)
                scores[position] += idf * count * (self.k1 + 1) / (count + norm)
        return [self.chunks[position] for position, _ in scores.most_common(k)]


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


# -- the run -------------------------------------------------------------------------------------------------

def build_corpus(name: str, version: str) -> tuple[Path, list[Documented]]:
    """The stripped copy of the project, committed to a git repository, and its documented functions."""
    source = fetch_sdist(name, version)
    repo = CACHE / "stripped" / source.name
    documented = strip_docstrings(source, repo)
    _commit_all(repo)
    return repo, documented


def _commit_all(repo: Path) -> None:
    """Make `repo` a git repository whose HEAD holds exactly its files (a no-op once it does)."""
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@localhost",
                               "-c", "core.hooksPath=/dev/null", *args], check=True, capture_output=True, text=True)

    if not (repo / ".git").is_dir():
        git("init", "-q")
    git("add", "-A")
    if git("status", "--porcelain").stdout.strip():
        git("commit", "-q", "-m", "docstrings stripped")


def chunk_tree(root: Path) -> list[Chunk]:
    """The chunks of every .py file, as the indexer makes them (for the keyword baseline)."""
    chunks: list[Chunk] = []
    for relative in python_files(root):
        text = (root / relative).read_text(encoding="utf-8", errors="replace")
        chunks.extend(chunk_source(relative.as_posix(), text))
    return chunks


def index_repo(repo: Path, embedder: CachedEmbedder) -> tuple[IndexConfig, Path]:
    """Bring the product's index of `repo` up to date (incremental: reruns reuse it) and time it."""
    config = IndexConfig(embedding_model=MODEL, model_path=str(MODEL_PATH))
    folder = CACHE / "index" / repo.name
    store = EdgeStore(folder)
    started = time.perf_counter()
    try:
        summary = Indexer(repo, config, store, embedder).update()
    finally:
        store.close()
    print(f"indexed: {summary.files_indexed} files changed, {summary.chunks_total} chunks, "
          f"{time.perf_counter() - started:.1f} s; embedded {embedder.computed} new texts in "
          f"{embedder.seconds:.1f} s", flush=True)
    return config, folder


def evaluate(targets: list[Target], rank: Callable[[Target], Sequence[Located]]) -> dict[str, float]:
    """recall@1/5/10 and MRR@10 of one ranking function."""
    ranks: list[int | None] = []
    for target in targets:
        ranks.append(next((i + 1 for i, hit in enumerate(rank(target)) if is_hit(hit, target)), None))
    n = len(targets)
    figures = {f"R@{k}": sum(1 for r in ranks if r is not None and r <= k) / n for k in (1, 5, 10)}
    figures["MRR"] = sum(1 / r for r in ranks if r is not None) / n
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--project", default="==".join(DEFAULT_PROJECT), help="NAME==VERSION of an sdist")
    parser.add_argument("--package-dir", default=None, help="where targets are taken from (default: name lower)")
    parser.add_argument("--targets", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of " + ",".join(MODES))
    args = parser.parse_args()
    name, version = args.project.split("==")
    modes = [m for m in MODES if m in args.modes.split(",")]

    started = time.perf_counter()
    repo, documented = build_corpus(name, version)
    targets = select_targets(documented, args.targets, args.seed, (args.package_dir or name.lower()) + "/")
    chunks = chunk_tree(repo)
    print(f"corpus: {name} {version}, {len(python_files(repo))} .py files, {len(chunks)} chunks, "
          f"{len(targets)} queries; prepared in {time.perf_counter() - started:.1f} s", flush=True)

    embedder = CachedEmbedder(CACHE / "embeddings.sqlite")
    rows: dict[str, dict[str, float]] = {}
    if set(modes) - {"keyword"}:
        config, folder = index_repo(repo, embedder)
        with Retriever(repo, config, store=EdgeStore(folder), embedder=embedder) as retriever:
            for mode in (m for m in modes if m != "keyword"):
                rows[mode] = evaluate(targets, lambda t, mode=mode: retriever.search(t.query, k=10, mode=mode))
    if "keyword" in modes:
        keyword = KeywordBaseline(chunks)
        rows["keyword"] = evaluate(targets, lambda t: keyword.search(t.query))

    print(f"\n{'mode':<10}{'R@1':>8}{'R@5':>8}{'R@10':>8}{'MRR':>8}")
    for mode, figures in rows.items():
        print(f"{mode:<10}" + "".join(f"{figures[key]:>8.3f}" for key in ("R@1", "R@5", "R@10", "MRR")))


if __name__ == "__main__":
    main()
