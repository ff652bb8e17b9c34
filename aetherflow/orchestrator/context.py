"""Repository context for a run: what the planner and each agent are shown, and the search_code tool.

With an index: a ranked repository map and hybrid-search chunks. Without one: the list of tracked files, so a
plan can still be made (the README tells users to run `aether index` for better plans).

An index that cannot be used (missing, damaged, a server whose key is not set) never fails a run: the run goes on
without retrieved context.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from aetherflow.config.models import Settings
from aetherflow.errors import AetherError
from aetherflow.index.search import Retriever, SearchHit
from aetherflow.orchestrator.plan import TaskSpec
from aetherflow.orchestrator.planner import PlanContext

MAP_TOKENS = 1500
PLAN_CHUNKS = 8
TASK_CHUNKS = 6
CHUNK_CHARS = 1500
FALLBACK_FILES = 300


def format_hit(hit: SearchHit) -> str:
    """One retrieved chunk as the models see it: location, symbol, then the code (bounded)."""
    symbol = f" {hit.qualified_symbol}" if hit.qualified_symbol else ""
    return f"{hit.path}:{hit.start_line}-{hit.end_line}{symbol}\n{hit.text[:CHUNK_CHARS]}"


class RunContext:
    """Retrieval for one run. Opens the index lazily; `close()` releases it for other processes."""

    def __init__(self, repo_root: Path, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        self.repo_root = repo_root
        self._retriever = Retriever(repo_root, settings.index, environ)
        try:
            self.available = self._retriever.exists()
        except AetherError:
            self.available = False

    def plan_context(self, request: str, past_solutions: list[str], images: int = 0) -> PlanContext:
        """The planner's view: repository map, chunks relevant to the request, past solutions."""
        if not self.available:
            return PlanContext(repo_map=self._file_list(), chunks=[], past_solutions=past_solutions, images=images)
        try:
            repo_map = self._retriever.repo_map(token_budget=MAP_TOKENS)
        except AetherError:
            repo_map = self._file_list()
        return PlanContext(
            repo_map=repo_map,
            chunks=self.search_code(request, PLAN_CHUNKS),
            past_solutions=past_solutions,
            images=images,
        )

    def task_context(self, task: TaskSpec) -> str:
        """Chunks relevant to one subtask, as one text block (empty without an index)."""
        if not self.available:
            return ""
        return "\n\n".join(self.search_code(task.description, TASK_CHUNKS))

    def hit_paths(self, task: TaskSpec) -> list[str]:
        """The files of the chunks retrieved for `task`, best first (empty without an index)."""
        if not self.available:
            return []
        try:
            hits = self._retriever.search(task.description, k=TASK_CHUNKS)
        except AetherError:
            return []
        return list(dict.fromkeys(hit.path for hit in hits))

    def search_code(self, query: str, k: int) -> list[str]:
        """The search_code tool: formatted hits for `query`."""
        if not self.available:
            return []
        try:
            return [format_hit(hit) for hit in self._retriever.search(query, k=k)]
        except AetherError:
            return []

    def _file_list(self) -> str:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=self.repo_root, capture_output=True, check=False
        ).stdout.decode("utf-8", "replace").split("\0")
        files = [f for f in listed if f][:FALLBACK_FILES]
        return "Files (no index yet):\n" + "\n".join(files)

    def close(self) -> None:
        """Release the index."""
        self._retriever.close()
