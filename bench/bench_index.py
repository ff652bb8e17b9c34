"""Speed and memory of the repository index on a real open-source project (Django's package, ~1,200 files).

Figures (targets from issue 3):
- full index time vs fastembed alone embedding the same chunks sorted by length   (ratio <= 1.25)
- incremental update after a commit touching one file, as a new process           (<= 2 s wall)
- cold `aether search` in a new process                                            (<= 1 s)
- in-process query p50                                                             (<= 50 ms)
- peak RSS of the indexing process                                                 (<= 1 GB)
- engine comparison (the measurement behind the store choice): Qdrant Edge vs qdrant-client local mode,
  upsert / reopen / query with as many points as the corpus has chunks.

    /root/venv/bin/python bench/bench_index.py            # the whole package
    /root/venv/bin/python bench/bench_index.py --quick    # one sub-package, for a smoke run

The sdist is fetched with pip into bench/.cache (gitignored) by bench/_corpus.py; the benchmark repository is
re-created there on every run. Each measured step runs in its own process, so RSS and cold-start costs are
that step's alone. The machine is shared: figures vary with its load, so the script prints the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _corpus import CACHE, fetch_sdist  # noqa: E402

from aetherflow.index.embedder import BATCH_SIZE  # noqa: E402

MODEL_DIR = ROOT.parent / "shared" / "models" / "all-MiniLM-L6-v2-onnx"
REPO = CACHE / "index-bench" / "repo"
QUERIES = [
    "how are database migrations applied",
    "validate an email address",
    "render a template with a context",
    "QuerySet filter by primary key",
    "csrf token check on POST requests",
    "parse the HTTP Accept-Language header",
    "cache_page decorator",
    "send a password reset email",
    "serialize model instances to JSON",
    "timezone aware datetime conversion",
]
TARGETS = {"ratio": 1.25, "incremental_s": 2.0, "cold_search_s": 1.0, "query_p50_ms": 50.0, "rss_mb": 1024.0}

# Run inside the child processes: each prints one JSON line on stdout.
_CHILD_PRELUDE = f"import sys, json, time; sys.path.insert(0, {str(ROOT)!r})\n"
_FULL = _CHILD_PRELUDE + """
from pathlib import Path
from aetherflow.config.models import IndexConfig
from aetherflow.index.service import run_update
config = IndexConfig(model_path=sys.argv[2] or None)
t = time.perf_counter()
summary = run_update(Path(sys.argv[1]), config, full=sys.argv[3] == "full")[0]
print(json.dumps({"seconds": time.perf_counter() - t, "files": summary.files_total,
                  "embedded": summary.files_indexed, "chunks": summary.chunks_total,
                  "chunks_added": summary.chunks_added, "embed_seconds": summary.embed_seconds}))
"""
_BASELINE = _CHILD_PRELUDE + """
from pathlib import Path
from fastembed import TextEmbedding
from aetherflow.index import files, gitrepo
from aetherflow.index.chunking import chunk_source, detect_language
repo = Path(sys.argv[1])
rules = files.PathRules(repo, [])
listing = files.list_committed(repo, gitrepo.head_commit(repo), rules, 1_000_000)
texts = []
with gitrepo.BlobReader(repo) as reader:
    for candidate in listing.candidates:
        text = files.decode_source(candidate.path, reader.read(candidate.blob_sha))
        if isinstance(text, str):
            lang = detect_language(candidate.path) or "text"
            texts += [c.dense_text() for c in chunk_source(candidate.path, text, lang)]
texts.sort(key=len)
model = TextEmbedding("sentence-transformers/all-MiniLM-L6-v2", specific_model_path=sys.argv[2] or None)
t = time.perf_counter()
vectors = list(model.embed(texts, batch_size=int(sys.argv[3])))
print(json.dumps({"seconds": time.perf_counter() - t, "chunks": len(vectors)}))
"""
_QUERIES = _CHILD_PRELUDE + """
from pathlib import Path
from aetherflow.config.models import IndexConfig
from aetherflow.index.search import Retriever
queries = json.loads(sys.argv[3])
with Retriever(Path(sys.argv[1]), IndexConfig(model_path=sys.argv[2] or None)) as retriever:
    retriever.search("warm up", k=10)
    times = []
    for _ in range(5):
        for query in queries:
            t = time.perf_counter()
            retriever.search(query, k=10)
            times.append((time.perf_counter() - t) * 1000)
times.sort()
print(json.dumps({"p50_ms": times[len(times) // 2], "p95_ms": times[int(len(times) * 0.95)], "n": len(times)}))
"""
# What `aether search ...` runs, with the index commands registered even before the CLI lists them.
_SEARCH = _CHILD_PRELUDE + """
import aetherflow.cli.search_cmd
from aetherflow.cli import main
sys.argv = ["aether", *sys.argv[1:]]
main()
"""
_ENGINES = _CHILD_PRELUDE + """
import random, shutil, tempfile, uuid
from pathlib import Path
from aetherflow.index.store import EdgeStore, StoreFilter
from aetherflow.index.store_qdrant import QdrantServerStore
n, dim = int(sys.argv[1]), 384
rng = random.Random(7)
ids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(n)]
dense = [[rng.gauss(0, 1) for _ in range(dim)] for _ in range(n)]
sparse = [(sorted(rng.sample(range(50_000), 40)), [1.0] * 40) for _ in range(n)]
payloads = [{"record": "chunk", "path": f"f{i % 1000}.py", "language": "python"} for i in range(n)]
def edge(folder): return EdgeStore(folder)
def local(folder):
    import warnings
    from qdrant_client import QdrantClient
    warnings.filterwarnings("ignore", message="Payload indexes have no effect")
    return QdrantServerStore(QdrantClient(path=str(folder)), "bench")
out = {}
for name, make in (("edge", edge), ("qdrant_local", local)):
    folder = Path(tempfile.mkdtemp())
    store = make(folder)
    store.reset(dim)
    t = time.perf_counter()
    for start in range(0, n, 1024):
        end = start + 1024
        store.upsert_chunks(ids[start:end], dense[start:end], sparse[start:end], payloads[start:end])
    upsert = time.perf_counter() - t
    store.close()
    t = time.perf_counter()
    store = make(folder)
    store.count_chunks()
    reopen = time.perf_counter() - t
    times = []
    for i in range(30):
        t = time.perf_counter()
        store.search(dense[i], sparse[i], 10, StoreFilter())
        times.append((time.perf_counter() - t) * 1000)
    store.close()
    shutil.rmtree(folder)
    out[name] = {"upsert_s": upsert, "reopen_s": reopen, "query_p50_ms": sorted(times)[15]}
print(json.dumps(out))
"""


class Child:
    """What a finished child process printed and used."""

    def __init__(self, data: dict, wall: float, cpu: float, rss_mb: float) -> None:
        self.data, self.wall, self.cpu, self.rss_mb = data, wall, cpu, rss_mb


def run_child(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> Child:
    """Run `python ARGV`; return its last JSON line, wall time, CPU time (user + sys) and peak RSS."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, text=True, cwd=cwd, env=env)
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    child.stdout.close()
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"child failed with exit code {child.returncode}: {argv[:3]}")
    lines = [line for line in output.splitlines() if line.startswith("{")]
    data = json.loads(lines[-1]) if lines else {}
    return Child(data, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def git(*args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
    subprocess.run(["git", *args], cwd=REPO, env=env, check=True, capture_output=True)


def make_repo(quick: bool) -> int:
    """A fresh git repository holding Django's package (the `db` sub-package with --quick)."""
    source = fetch_sdist() / "django"
    if quick:
        source = source / "db"
    if REPO.exists():
        shutil.rmtree(REPO)
    shutil.copytree(source, REPO / source.name)
    # Translation catalogues (.po) are data, not code: a user would leave them out the same way.
    (REPO / ".aetherignore").write_text("*.po\n")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", "benchmark corpus")
    return sum(1 for p in (REPO / source.name).rglob("*") if p.is_file())


def touch_one_file() -> Path:
    """Append a function to the median-sized Python file and commit."""
    sources = sorted(REPO.rglob("*.py"), key=lambda p: (p.stat().st_size, p.as_posix()))
    target = sources[len(sources) // 2]
    with target.open("a", encoding="utf-8") as handle:
        handle.write("\n\ndef benchmark_added_function(value):\n    return value * 2\n")
    git("commit", "-q", "-am", "touch one file")
    return target


def cold_search(model: str, runs: int) -> list[Child]:
    env = {**os.environ, "AETHER_INDEX__MODEL_PATH": model} if model else dict(os.environ)
    return [run_child(["-c", _SEARCH, "search", query, "-k", "10"], cwd=REPO, env=env) for query in QUERIES[:runs]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Index one sub-package only (a smoke run).")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                        help="Batch size of the fastembed-alone baseline (default: the indexer's).")
    parser.add_argument("--no-engines", action="store_true", help="Skip the Edge vs local-mode comparison.")
    args = parser.parse_args()
    model = str(MODEL_DIR) if MODEL_DIR.is_dir() else ""
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    files = make_repo(args.quick)
    print(f"corpus: {files} files in {REPO}")

    full = run_child(["-c", _FULL, str(REPO), model, "full"])
    stats = full.data
    rate = stats["chunks"] / stats["seconds"]
    print(f"full index: {stats['files']} files, {stats['chunks']} chunks in {stats['seconds']:.1f} s "
          f"({rate:.1f} chunks/s; embedding {stats['embed_seconds']:.1f} s); process CPU {full.cpu:.0f} s")
    base = run_child(["-c", _BASELINE, str(REPO), model, str(args.batch_size)])
    ratio = stats["seconds"] / base.data["seconds"]
    print(f"fastembed alone, same {base.data['chunks']} chunks sorted by length (batch {args.batch_size}): "
          f"{base.data['seconds']:.1f} s ({base.data['chunks'] / base.data['seconds']:.1f} chunks/s); "
          f"process CPU {base.cpu:.0f} s (includes chunking)")
    print(f"ratio full index / fastembed alone: {ratio:.2f} wall, {full.cpu / base.cpu:.2f} CPU "
          f"(target <= {TARGETS['ratio']}; wall depends on the machine's load during each run)")

    touched = touch_one_file()
    update = run_child(["-c", _FULL, str(REPO), model, "incremental"])
    print(f"incremental after a one-file commit ({touched.relative_to(REPO)}): {update.wall:.2f} s wall as a "
          f"new process, {update.cpu:.2f} s CPU ({update.data['seconds']:.2f} s inside; "
          f"{update.data['embedded']} file, {update.data['chunks_added']} chunks) "
          f"(target <= {TARGETS['incremental_s']})")

    searches = cold_search(model, runs=5)
    walls, cpus = [c.wall for c in searches], [c.cpu for c in searches]
    print(f"cold `aether search` (new process): median {statistics.median(walls):.2f} s wall, "
          f"min {min(walls):.2f} s; median {statistics.median(cpus):.2f} s CPU over {len(walls)} "
          f"(target <= {TARGETS['cold_search_s']})")
    queries = run_child(["-c", _QUERIES, str(REPO), model, json.dumps(QUERIES)]).data
    print(f"in-process query: p50 {queries['p50_ms']:.1f} ms, p95 {queries['p95_ms']:.1f} ms over "
          f"{queries['n']} (target p50 <= {TARGETS['query_p50_ms']:.0f} ms)")
    print(f"peak RSS while indexing: {full.rss_mb:.0f} MB (target <= {TARGETS['rss_mb']:.0f}); "
          f"fastembed alone: {base.rss_mb:.0f} MB")
    if not args.no_engines:
        engines = run_child(["-c", _ENGINES, str(stats["chunks"])]).data
        for name, figures in engines.items():
            print(f"engine {name:>12}: {stats['chunks']} points upsert {figures['upsert_s']:.1f} s, "
                  f"reopen {figures['reopen_s']:.2f} s, hybrid query p50 {figures['query_p50_ms']:.1f} ms")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
