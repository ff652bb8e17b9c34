"""Hybrid search over a real index: paraphrases (dense), identifier fragments (sparse), filters, repo map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aetherflow.config.models import IndexConfig
from aetherflow.errors import RepoIndexError
from aetherflow.index.embedder import FastEmbedder
from aetherflow.index.indexer import Indexer
from aetherflow.index.query_embedder import OnnxQueryEmbedder, query_embedder
from aetherflow.index.search import Retriever, SearchHit, matching_words, normalise_language, snippet
from aetherflow.index.service import index_dir
from aetherflow.index.store import EdgeStore

CODE = {
    "net/http_client.py": '''
import time


def fetch_with_retry_backoff(url, attempts=5):
    """Download a URL, waiting longer after each failed attempt."""
    delay = 0.5
    for _ in range(attempts):
        try:
            return urlopen(url).read()
        except OSError:
            time.sleep(delay)
            delay *= 2
    raise RuntimeError(url)
''',
    "auth/passwords.py": '''
import hashlib
import os


def hash_password(plain):
    """Derive a salted hash for storing user credentials."""
    salt = os.urandom(16)
    return salt + hashlib.pbkdf2_hmac("sha256", plain.encode(), salt, 100_000)


def check_password(plain, stored):
    salt = stored[:16]
    return hashlib.pbkdf2_hmac("sha256", plain.encode(), salt, 100_000) == stored[16:]
''',
    "geo/sphere.py": '''
from math import asin, cos, radians, sin, sqrt


def haversine_km(lat1, lon1, lat2, lon2):
    """Great-circle separation of two latitude/longitude pairs in kilometres."""
    dlat, dlon = radians(lat2 - lat1), radians(lon2 - lon1)
    a = sin(dlat / 2) ** 2 + cos(radians(lat1)) * cos(radians(lat2)) * sin(dlon / 2) ** 2
    return 2 * 6371 * asin(sqrt(a))
''',
    "db/migrations.py": '''
class MigrationRunner:
    """Applies schema migrations in order."""

    def apply_pending(self, connection):
        for migration in self.pending(connection):
            migration.apply(connection)

    def pending(self, connection):
        return []
''',
    "web/cart.js": '''
function computeCartTotal(items) {
  return items.reduce((sum, item) => sum + item.price * item.quantity, 0);
}

function formatPrice(cents) {
  return (cents / 100).toFixed(2);
}
''',
    "README.md": "# Shop\n\nA small shop backend.\n\n## Install\n\nRun `pip install shop`.\n",
    "tests/test_cart.py": "def test_total():\n    assert True\n",
}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, index_config: IndexConfig, embedder) -> Path:
    from index_support import commit, git

    repo = tmp_path_factory.mktemp("search") / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    commit(repo, {path: text.lstrip("\n") for path, text in CODE.items()})
    store = EdgeStore(index_dir(repo))
    Indexer(repo, index_config, store, embedder).update()
    store.close()
    return repo


@pytest.fixture
def retriever(indexed: Path, index_config: IndexConfig, embedder):
    with Retriever(indexed, index_config, embedder=embedder) as opened:
        yield opened


def _top(hits: list[SearchHit]) -> str | None:
    return hits[0].symbol if hits else None


@pytest.mark.parametrize(
    ("query", "symbol"),
    [
        ("how far apart are two places on the globe", "haversine_km"),
        ("try again later when the network request fails", "fetch_with_retry_backoff"),
        ("add up what the shopping basket costs", "computeCartTotal"),
    ],
)
def test_dense_finds_a_function_by_a_paraphrase_of_its_purpose(retriever: Retriever, query: str, symbol: str) -> None:
    assert _top(retriever.search(query, k=3, mode="dense")) == symbol
    assert symbol in [h.symbol for h in retriever.search(query, k=3)]


@pytest.mark.parametrize(
    ("query", "symbol"),
    [("backoff", "fetch_with_retry_backoff"), ("CartTotal", "computeCartTotal"), ("haversine", "haversine_km")],
)
def test_sparse_finds_a_function_by_an_identifier_fragment(retriever: Retriever, query: str, symbol: str) -> None:
    assert _top(retriever.search(query, k=3, mode="sparse")) == symbol
    assert _top(retriever.search(query, k=3)) == symbol


def test_hits_carry_location_and_metadata(retriever: Retriever) -> None:
    hit = retriever.search("apply pending schema migrations", k=1)[0]
    assert hit.path == "db/migrations.py" and hit.language == "python"
    assert hit.location == f"db/migrations.py:{hit.start_line}"
    assert hit.start_line >= 1 and hit.end_line >= hit.start_line
    assert "migration" in hit.text.lower()


def test_language_and_path_filters(retriever: Retriever) -> None:
    js = retriever.search("total price", k=10, language="js")
    assert js and {h.language for h in js} == {"javascript"}
    auth = retriever.search("hash", k=10, path_glob="auth/")
    assert auth and {h.path for h in auth} == {"auth/passwords.py"}
    assert retriever.search("hash", k=10, path_glob="*.rs") == []
    assert normalise_language("py") == "python" and normalise_language("TS") == "typescript"
    assert normalise_language("rust") == "rust"


def test_repo_map_ranks_files_and_fits_the_budget(retriever: Retriever) -> None:
    full = retriever.repo_map(token_budget=2000)
    lines = full.splitlines()
    assert lines[0].startswith("auth/passwords.py") or lines[0].startswith("web/cart.js")
    assert "hash_password(), check_password()" in full
    assert "MigrationRunner" in full
    first_test = next(i for i, line in enumerate(lines) if line.startswith("tests/"))
    first_db = next(i for i, line in enumerate(lines) if line.startswith("db/"))
    assert first_test > first_db
    small = retriever.repo_map(token_budget=20)
    assert len(small) <= 20 * 4 + 20 and small.splitlines()[-1].startswith("…")


def test_snippet_centres_on_the_matching_line() -> None:
    text = "\n".join(f"line {i}" for i in range(20)) + "\nneedle_here = 1\n" + "\n".join("x" for _ in range(5))
    hit = SearchHit(
        path="a.py", start_line=100, end_line=126, symbol=None, parent=None, kind="window",
        language="python", signature=None, score=1.0, text=text,
    )
    first, lines = snippet(hit, "needle", max_lines=6)
    assert "needle_here = 1" in lines and first == 100 + 20 - 2
    assert matching_words("value = needle_here + other", "needle") == ["needle_here"]


def test_no_index_or_another_model_explains_what_to_run(make_repo, indexed: Path, index_config, embedder) -> None:
    empty = make_repo({"a.py": "x = 1\n"}, name="unindexed")
    with Retriever(empty, index_config, embedder=embedder) as retriever:
        assert not retriever.exists()
        with pytest.raises(RepoIndexError) as missing:
            retriever.search("x")
    assert "aether index" in str(missing.value)
    other = index_config.model_copy(update={"embedding_model": "BAAI/bge-small-en-v1.5"})
    with Retriever(indexed, other, embedder=embedder) as retriever, pytest.raises(RepoIndexError) as mismatch:
        retriever.search("x")
    assert "all-MiniLM-L6-v2" in str(mismatch.value) and "aether index" in str(mismatch.value)


def test_sorted_batches_return_vectors_in_the_callers_order(embedder) -> None:
    texts = ["a much longer text about parsing configuration files and their sections", "short", "medium text here"]
    together = embedder.embed_documents(texts)
    alone = np.array([embedder.embed_documents([t])[0] for t in texts])
    assert together.shape == (3, 384)
    assert np.allclose(together, alone, atol=1e-5)


def test_direct_query_path_matches_fastembed(index_config: IndexConfig, embedder) -> None:
    fast = query_embedder(index_config)
    if index_config.model_path is None:
        pytest.skip("no local model folder: queries go through fastembed itself")
    assert isinstance(fast, OnnxQueryEmbedder)
    for text in ("how far apart are two places", "fetch_with_retry_backoff", "x " * 400):
        assert np.allclose(fast.embed_query(text), embedder.embed_query(text), atol=1e-5)
    other = index_config.model_copy(update={"embedding_model": "BAAI/bge-small-en-v1.5"})
    assert isinstance(query_embedder(other), FastEmbedder)


def test_missing_model_names_index_model_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = FastEmbedder(IndexConfig(model_path=str(tmp_path / "nowhere")))
    with pytest.raises(RepoIndexError) as not_a_folder:
        missing.embed_query("x")
    assert "index.model_path" in str(not_a_folder.value)
    empty = tmp_path / "empty-model"
    empty.mkdir()
    with pytest.raises(RepoIndexError) as no_files:
        FastEmbedder(IndexConfig(model_path=str(empty))).embed_query("x")
    assert "index.model_path" in str(no_files.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # "no network", at once instead of after retries
    with pytest.raises(RepoIndexError) as offline:
        FastEmbedder(IndexConfig(model_path=None)).embed_query("x")
    assert "index.model_path" in str(offline.value) and "AETHER_INDEX__MODEL_PATH" in str(offline.value)
